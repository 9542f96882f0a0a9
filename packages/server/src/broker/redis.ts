import { BackendUnavailableError, guarded } from '../driver.js';
import { ShardDriver, type RedisShard } from '../redis/index.js';
import type { Broker, BrokerHandler } from './broker.js';

/** The Redis channel of a topic: the topic under the key prefix. */
export const topicChannel = (prefix: string, topic: string): string => `${prefix}${topic}`;

/** Channels per SUBSCRIBE when a reconnect restores them. */
const RESTORE_CHUNK = 1000;
/** How long after a subscribe failed on a live connection it is tried again. */
const RETRY_MS = 1000;

/**
 * Redis pub/sub broker on the node's shard: it publishes on the command connection (which fails
 * at once while Redis is down: a message that cannot be published now is recovered from the
 * store by the receivers, not sent late) and subscribes on the subscriber connection.
 *
 * Subscriptions hold whatever Redis does: the broker keeps every topic it was asked to
 * subscribe (`wanted`), whether or not the SUBSCRIBE succeeded, and after every (re)connect of
 * the subscriber subscribes all of them again; a SUBSCRIBE that fails on a live connection is
 * retried every RETRY_MS. It reports healthy only once every wanted topic is subscribed on the
 * current connection, so the node's catch-up read after an outage (`onHealth(true)`) runs
 * when nothing more can be missed.
 */
export class RedisBroker extends ShardDriver implements Broker {
  readonly fanout = true;
  onMessage?: BrokerHandler | undefined;
  private started = false;
  /** Channels this node wants, subscribed or not. */
  private readonly wanted = new Set<string>();
  /** Channels subscribed on the current subscriber connection. */
  private readonly held = new Set<string>();
  /** The wanted channels were all subscribed since the subscriber last connected. */
  private restored = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    redis: RedisShard,
    private readonly prefix = 'parley:',
  ) {
    super(redis);
  }

  /** Both connections are up and every wanted topic is subscribed: it can publish and receive. */
  override get healthy(): boolean {
    return this.redis.healthy && this.redis.subscriberHealthy && this.restored;
  }

  /** Connects; if Redis is down at start the node still starts (not ready) and ioredis keeps retrying. */
  override async init(): Promise<void> {
    if (!this.started) {
      this.started = true;
      const cut = this.prefix.length;
      const sub = this.redis.subscriber;
      sub.on('message', (channel: string, payload: string) => {
        if (channel.startsWith(this.prefix)) this.onMessage?.(channel.slice(cut), payload);
      });
      sub.on('ready', () => void this.restore());
      sub.on('close', () => {
        this.restored = false;
        this.held.clear();
      });
      if (sub.status === 'ready') void this.restore();
    }
    await super.init();
  }

  override async close(): Promise<void> {
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.retry = undefined;
    this.wanted.clear();
    await super.close();
  }

  async publish(topic: string, payload: string): Promise<void> {
    if (!this.started) throw new Error('redis broker is not started');
    await guarded('broker', this.driver, () => this.redis.command.publish(topicChannel(this.prefix, topic), payload));
  }

  /**
   * Resolves once the topic is subscribed; rejects (BackendUnavailableError) while Redis is
   * down or refuses, but the topic stays wanted either way and is subscribed when it can be.
   */
  async subscribe(topic: string): Promise<void> {
    const channel = topicChannel(this.prefix, topic);
    this.wanted.add(channel);
    if (!this.started) return;
    if (this.redis.subscriber.status !== 'ready') throw new BackendUnavailableError('broker', this.driver, new Error('redis subscriber is not connected'));
    try {
      await this.subscribeNow([channel]);
    } catch (err) {
      this.retryLater();
      throw err;
    }
  }

  async unsubscribe(topic: string): Promise<void> {
    const channel = topicChannel(this.prefix, topic);
    this.wanted.delete(channel);
    if (!this.held.delete(channel) || !this.started || this.redis.subscriber.status !== 'ready') return;
    await guarded('broker', this.driver, () => this.redis.subscriber.unsubscribe(channel));
  }

  /** SUBSCRIBEs `channels`; each one no longer wanted by the time Redis answers is let go again. */
  private async subscribeNow(channels: string[]): Promise<void> {
    await guarded('broker', this.driver, () => this.redis.subscriber.subscribe(...channels));
    const gone: string[] = [];
    for (const c of channels) {
      if (this.wanted.has(c)) this.held.add(c);
      else gone.push(c);
    }
    if (gone.length > 0) this.redis.subscriber.unsubscribe(...gone).catch(() => undefined);
  }

  /** Subscribes every wanted channel not held on the current connection; healthy once all are. */
  private async restore(): Promise<void> {
    if (this.redis.subscriber.status !== 'ready') return;
    const missing = [...this.wanted].filter((c) => !this.held.has(c));
    try {
      for (let i = 0; i < missing.length; i += RESTORE_CHUNK) await this.subscribeNow(missing.slice(i, i + RESTORE_CHUNK));
    } catch {
      this.retryLater();
      return;
    }
    if (this.redis.subscriber.status !== 'ready') return;
    if ([...this.wanted].some((c) => !this.held.has(c))) {
      this.retryLater(); // wanted meanwhile, its own subscribe failed
      return;
    }
    if (!this.restored) {
      this.restored = true;
      this.redis.changed();
    }
  }

  private retryLater(): void {
    if (this.retry !== undefined || !this.started) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.restore();
    }, RETRY_MS);
    this.retry.unref();
  }
}
