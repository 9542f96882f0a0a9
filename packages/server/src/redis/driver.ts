import type { RedisShard } from './shard.js';

/**
 * What the Redis drivers share: they run on the node's shard (closed by its owner, not by
 * them), are healthy while its command connection is up, and report each change of that.
 */
export abstract class ShardDriver {
  readonly driver = 'redis';
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;

  constructor(protected readonly redis: RedisShard) {
    redis.follow(() => this.healthy, () => this.onHealth);
  }

  get healthy(): boolean {
    return this.redis.healthy;
  }

  /** Connects the shard (idempotent: every driver on it calls it). */
  init(): Promise<void> {
    return this.redis.init();
  }

  /** Nothing of its own to release: the shard is the node's. */
  async close(): Promise<void> {
    this.onHealth = undefined;
  }
}
