export { startServer, createLogger, type ParleyServer, type ServerOptions } from './server.js';
export { loadConfig, configSchema, ConfigError, type Config, type ConfigInput, type ConfigKey } from './config.js';
export { createStore, SqliteStore, PostgresStore, StoreError, type Store } from './store/index.js';
export { DriverError, BackendUnavailableError, type Driver, type DriverErrorCode } from './driver.js';
export { RedisShard } from './redis/index.js';
