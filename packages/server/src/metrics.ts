/**
 * What a node counts, for Prometheus (prom-client): `GET /metrics` on the main port
 * (`metricsOnMainPort`) and, optionally, on a port of its own (`metricsPort`, served by
 * `serveMetrics`). One registry per server (several servers may share a process: tests,
 * embedding), with Node's default metrics (event-loop lag included) on it.
 *
 * Every fault shows here: store errors and the store's health, the broker's state, gap fills,
 * slow consumers closed, rate-limited events. The names are part of the operator's interface
 * (README, "Operations: metrics and health").
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { errorBody } from './http/errors.js';

export class Metrics {
  readonly registry = new Registry();
  /** Open WebSocket connections on this node (set by a collect callback). */
  readonly connections: Gauge;
  /** Messages this node stored (retries of a stored message not counted). */
  readonly messagesStored: Counter;
  /** new_message frames written to clients (live and replayed). */
  readonly deliveries: Counter;
  /** Store operations that failed, by operation (`append`: a batch of messages) and kind (the StoreError code: `unavailable`, `invalid`; `internal` for anything else). */
  readonly storeErrors: Counter<'op' | 'kind'>;
  /** 1 while the broker is connected (always 1 for the memory broker). */
  readonly brokerUp: Gauge;
  /** 1 while the store can write (see store/health.ts), 0 from a failed write until one succeeds. */
  readonly storeUp: Gauge;
  /** Ranges of a room read from the store because the broker did not bring them (gaps, outages, lost publications). */
  readonly gapFills: Counter<'reason'>;
  /** Connections closed because they did not read fast enough (4000, or a stall). */
  readonly slowConsumerCloses: Counter;
  /** Events and messages refused with rate_limited, by limit (`connection`: the per-connection bucket; `user`: userRateLimitPerSec; `history`: too many history requests in flight). */
  readonly rateLimited: Counter<'limit'>;
  /** How long one store write (a batch of messages in one transaction) takes. */
  readonly storeWriteSeconds: Histogram;

  constructor(
    connections: () => number = () => 0,
    /** Whether the store can write now (its `healthy`), read at each scrape. */
    storeHealthy: () => boolean = () => true,
  ) {
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
    this.storeUp = new Gauge({
      name: 'parley_store_up',
      help: '1 while the store can write; 0 from a write that failed with a backend error until one succeeds.',
      registers,
      collect() {
        this.set(storeHealthy() ? 1 : 0);
      },
    });
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

/** The exposition, answered to GET and HEAD. */
export async function answerMetrics(metrics: Metrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { body, contentType } = await metrics.render();
  res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The port of its own that serves only GET /metrics (`metricsPort`). */
export interface MetricsServer {
  /** The bound port. */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Listens on `host:port` and serves GET /metrics only: any other path is 404 `not_found`, any
 * other method 405 `method_not_allowed`, as on the main port.
 */
export async function serveMetrics(metrics: Metrics, port: number, host: string): Promise<MetricsServer> {
  const refuse = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', ...headers });
    res.end(body);
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return refuse(res, 404, errorBody('not_found'));
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, errorBody('method_not_allowed', 'Use GET /metrics.'), { Allow: 'GET, HEAD' });
    answerMetrics(metrics, req, res).catch(() => refuse(res, 500, errorBody('internal')));
  });
  server.headersTimeout = 20_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
