import { EventEmitter } from 'node:events';
import type { Broker, BrokerHandler } from './broker.js';

/**
 * In-process broker. Alone it serves one node; several servers in one process can share a
 * `bus` (tests, embedding). Delivery is synchronous and in publish order.
 */
export class MemoryBroker implements Broker {
  readonly driver = 'memory';
  readonly healthy = true;
  private handler: BrokerHandler | undefined;
  private readonly rooms = new Set<string>();
  private readonly listener = (room: string, payload: string) => {
    if (this.rooms.has(room)) this.handler?.(room, payload);
  };

  readonly fanout: boolean;

  private readonly bus: EventEmitter;

  /** @param bus share one bus between servers in one process; without it this node is alone. */
  constructor(bus?: EventEmitter) {
    this.bus = bus ?? new EventEmitter();
    this.bus.setMaxListeners(0);
    this.fanout = bus !== undefined;
  }

  async init(onMessage: BrokerHandler): Promise<void> {
    this.handler = onMessage;
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

  onHealth(): void {
    // Always healthy.
  }

  async close(): Promise<void> {
    this.bus.off('publish', this.listener);
    this.rooms.clear();
  }
}
