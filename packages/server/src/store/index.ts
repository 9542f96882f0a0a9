import { join } from 'node:path';
import type { Config } from '../config.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

export * from './store.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite.js';
export { PostgresStore, type PostgresStoreOptions } from './postgres.js';

/** The SQLite file inside dataDir. */
export const sqliteFile = (config: Pick<Config, 'dataDir'>): string => join(config.dataDir, 'parley.db');

/** Builds the store the config names (not yet initialized). */
export function createStore(config: Pick<Config, 'store' | 'dataDir' | 'postgresUrl' | 'postgresSchema' | 'durability' | 'pgStatementTimeoutMs' | 'pgConnectTimeoutMs'>): Store {
  switch (config.store) {
    case 'sqlite':
      return new SqliteStore(sqliteFile(config), { durability: config.durability });
    case 'postgres':
      return new PostgresStore({
        url: config.postgresUrl as string,
        schema: config.postgresSchema,
        durability: config.durability,
        statementTimeoutMs: config.pgStatementTimeoutMs,
        connectTimeoutMs: config.pgConnectTimeoutMs,
      });
  }
}
