import { Redis } from 'ioredis';
import type { Broker, BrokerHandler } from './broker.js';

/** The Redis channel of a topic: the topic under the key prefix. */
export const topicChannel = (prefix: string, topic: string): string => `${prefix}${topic}`;

/**
 * Redis pub/sub broker: one connection publishes, one subscribes (a subscribed Redis connection
 * can do nothing else). ioredis reconnects by itself with backoff and re-subscribes every
 * channel; `onHealth(true)` then lets the node read what it missed from the store.
 */
export class RedisBroker implements Broker {
  readonly driver = 'redis';
  readonly fanout = true;
  private pub: Redis | undefined;
  private sub: Redis | undefined;
  private healthFns: ((h: boolean) => void)[] = [];
  private up = { pub: false, sub: false };
  private reported = false;

  constructor(
    private readonly url: string,
    private readonly prefix = 'parley:',
  ) {}

  get healthy(): boolean {
    return this.up.pub && this.up.sub;
  }

  async init(onMessage: BrokerHandler): Promise<void> {
    const options = {
      // Fail commands at once while disconnected instead of queueing them: a message that cannot
      // be published now is recovered from the store by the receivers, not sent late.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5000),
      lazyConnect: true,
    };
    this.pub = new Redis(this.url, options);
    this.sub = new Redis(this.url, { ...options, enableOfflineQueue: true });
    const cut = this.prefix.length;
    this.sub.on('message', (channel: string, payload: string) => onMessage(channel.slice(cut), payload));
    for (const [name, conn] of [['pub', this.pub], ['sub', this.sub]] as const) {
      conn.on('ready', () => this.setUp(name, true));
      conn.on('close', () => this.setUp(name, false));
      conn.on('error', () => undefined); // reported through 'close' and healthy; ioredis retries
    }
    // If Redis is down at start the node still starts (not ready); ioredis keeps retrying.
    await Promise.all([this.pub.connect(), this.sub.connect()]).catch(() => undefined);
  }

  private setUp(which: 'pub' | 'sub', v: boolean): void {
    this.up[which] = v;
    const h = this.healthy;
    if (h !== this.reported) {
      this.reported = h;
      for (const fn of this.healthFns) fn(h);
    }
  }

  async publish(topic: string, payload: string): Promise<void> {
    if (this.pub === undefined) throw new Error('redis broker is not started');
    await this.pub.publish(topicChannel(this.prefix, topic), payload);
  }

  async subscribe(topic: string): Promise<void> {
    await this.sub?.subscribe(topicChannel(this.prefix, topic));
  }

  async unsubscribe(topic: string): Promise<void> {
    await this.sub?.unsubscribe(topicChannel(this.prefix, topic));
  }

  onHealth(fn: (healthy: boolean) => void): void {
    this.healthFns.push(fn);
  }

  async close(): Promise<void> {
    this.healthFns = [];
    await Promise.all([this.pub?.quit().catch(() => this.pub?.disconnect()), this.sub?.quit().catch(() => this.sub?.disconnect())]);
  }
}
