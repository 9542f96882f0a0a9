import { guarded } from '../driver.js';
import { ShardDriver, type RedisShard } from '../redis/index.js';
import type { Broker, BrokerHandler } from './broker.js';

/** The Redis channel of a topic: the topic under the key prefix. */
export const topicChannel = (prefix: string, topic: string): string => `${prefix}${topic}`;

/**
 * Redis pub/sub broker on the node's shard: it publishes on the command connection (which fails
 * at once while Redis is down: a message that cannot be published now is recovered from the
 * store by the receivers, not sent late) and subscribes on the subscriber connection. ioredis
 * reconnects by itself with backoff and re-subscribes every channel; `onHealth(true)` then lets
 * the node read what it missed from the store.
 */
export class RedisBroker extends ShardDriver implements Broker {
  readonly fanout = true;
  onMessage?: BrokerHandler | undefined;
  private started = false;

  constructor(
    redis: RedisShard,
    private readonly prefix = 'parley:',
  ) {
    super(redis);
  }

  /** Both connections are up: it can publish and receive. */
  override get healthy(): boolean {
    return this.redis.healthy && this.redis.subscriberHealthy;
  }

  /** Connects; if Redis is down at start the node still starts (not ready) and ioredis keeps retrying. */
  override async init(): Promise<void> {
    if (!this.started) {
      this.started = true;
      const cut = this.prefix.length;
      this.redis.subscriber.on('message', (channel: string, payload: string) => {
        if (channel.startsWith(this.prefix)) this.onMessage?.(channel.slice(cut), payload);
      });
    }
    await super.init();
  }

  async publish(topic: string, payload: string): Promise<void> {
    if (!this.started) throw new Error('redis broker is not started');
    await guarded('broker', this.driver, () => this.redis.command.publish(topicChannel(this.prefix, topic), payload));
  }

  async subscribe(topic: string): Promise<void> {
    if (this.started) await guarded('broker', this.driver, () => this.redis.subscriber.subscribe(topicChannel(this.prefix, topic)));
  }

  async unsubscribe(topic: string): Promise<void> {
    if (this.started) await guarded('broker', this.driver, () => this.redis.subscriber.unsubscribe(topicChannel(this.prefix, topic)));
  }
}
