import { EventEmitter } from 'node:events';
import type { Broker, BrokerHandler } from './broker.js';

/**
 * In-process broker. Alone it serves one node; several servers in one process can share a
 * `bus` (tests, embedding). Delivery is synchronous and in publish order.
 */
export class MemoryBroker implements Broker {
  readonly driver = 'memory';
  readonly healthy = true;
  onMessage?: BrokerHandler | undefined;
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;
  private readonly topics = new Set<string>();
  private readonly listener = (topic: string, payload: string) => {
    if (this.topics.has(topic)) this.onMessage?.(topic, payload);
  };

  readonly fanout: boolean;

  private readonly bus: EventEmitter;

  /** @param bus share one bus between servers in one process; without it this node is alone. */
  constructor(bus?: EventEmitter) {
    this.bus = bus ?? new EventEmitter();
    this.bus.setMaxListeners(0);
    this.fanout = bus !== undefined;
  }

  /** The topics this node is subscribed to. */
  get subscriptions(): ReadonlySet<string> {
    return this.topics;
  }

  async init(): Promise<void> {
    this.bus.off('publish', this.listener); // a second init does not listen twice
    this.bus.on('publish', this.listener);
  }

  async publish(topic: string, payload: string): Promise<void> {
    this.bus.emit('publish', topic, payload);
  }

  async subscribe(topic: string): Promise<void> {
    this.topics.add(topic);
  }

  async unsubscribe(topic: string): Promise<void> {
    this.topics.delete(topic);
  }

  async close(): Promise<void> {
    this.bus.off('publish', this.listener);
    this.topics.clear();
  }
}
