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
  private readonly rooms = new Set<string>();
  private readonly listener = (room: string, payload: string) => {
    if (this.rooms.has(room)) this.onMessage?.(room, payload);
  };

  readonly fanout: boolean;

  private readonly bus: EventEmitter;

  /** @param bus share one bus between servers in one process; without it this node is alone. */
  constructor(bus?: EventEmitter) {
    this.bus = bus ?? new EventEmitter();
    this.bus.setMaxListeners(0);
    this.fanout = bus !== undefined;
  }

  async init(): Promise<void> {
    this.bus.off('publish', this.listener); // a second init does not listen twice
    this.bus.on('publish', this.listener);
  }

  async publish(room: string, payload: string): Promise<void> {
    this.bus.emit('publish', room, payload);
  }

  async subscribe(room: string): Promise<void> {
    this.rooms.add(room);
  }

  async unsubscribe(room: string): Promise<void> {
    this.rooms.delete(room);
  }

  async close(): Promise<void> {
    this.bus.off('publish', this.listener);
    this.rooms.clear();
  }
}
