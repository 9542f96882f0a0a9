export { COMMAND_TIMEOUT_MS, RedisShard, retryStrategy } from './shard.js';
export { ShardDriver } from './driver.js';
