/**
 * What a node counts, for Prometheus (prom-client): `GET /metrics` on the main port and,
 * optionally, on `metricsPort`. One registry per server (several servers may share a process:
 * tests, embedding), with Node's default metrics (event-loop lag included) on it.
 *
 * Every fault shows here: store errors, the broker's state, gap fills, slow consumers closed,
 * rate-limited events. The names are part of the operator's interface (docs/operations.md).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  /** Open WebSocket connections on this node (set by a collect callback). */
  readonly connections: Gauge;
  /** Messages this node stored (retries of a stored message not counted). */
  readonly messagesStored: Counter;
  /** new_message frames written to clients (live and replayed). */
  readonly deliveries: Counter;
  /** Store operations that failed, by operation and kind (`unavailable`, `invalid`). */
  readonly storeErrors: Counter<'op' | 'kind'>;
  /** 1 while the broker is connected (always 1 for the memory broker). */
  readonly brokerUp: Gauge;
  /** Ranges of a room read from the store because the broker did not bring them (gaps, outages, lost publications). */
  readonly gapFills: Counter<'reason'>;
  /** Connections closed because they did not read fast enough (4000, or a stall). */
  readonly slowConsumerCloses: Counter;
  /** Events and messages refused with rate_limited, by limit (`connection`, `user`). */
  readonly rateLimited: Counter<'limit'>;
  /** How long one store write (a batch of messages in one transaction) takes. */
  readonly storeWriteSeconds: Histogram;

  constructor(connections: () => number = () => 0) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.connections = new Gauge({
      name: 'parley_connections',
      help: 'Open WebSocket connections on this node.',
      registers,
      collect() {
        this.set(connections());
      },
    });
    this.messagesStored = new Counter({ name: 'parley_messages_stored_total', help: 'Messages stored by this node.', registers });
    this.deliveries = new Counter({ name: 'parley_deliveries_total', help: 'new_message frames written to clients, live and replayed.', registers });
    this.storeErrors = new Counter({ name: 'parley_store_errors_total', help: 'Store operations that failed.', labelNames: ['op', 'kind'], registers });
    this.brokerUp = new Gauge({ name: 'parley_broker_up', help: '1 while the broker is connected.', registers });
    this.brokerUp.set(1);
    this.gapFills = new Counter({ name: 'parley_gap_fills_total', help: 'Ranges of a room read from the store because the broker did not bring them.', labelNames: ['reason'], registers });
    this.slowConsumerCloses = new Counter({ name: 'parley_slow_consumer_closes_total', help: 'Connections closed for not reading fast enough.', registers });
    this.rateLimited = new Counter({ name: 'parley_rate_limited_total', help: 'Events refused with rate_limited.', labelNames: ['limit'], registers });
    this.storeWriteSeconds = new Histogram({
      name: 'parley_store_write_seconds',
      help: 'Duration of one store write (one batch of messages in one transaction).',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
  }

  /** The exposition text and its content type, for GET /metrics. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
