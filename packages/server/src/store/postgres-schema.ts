/** The PostgreSQL store's schema: its migrations, applied in order, once, by one node at a time. */
import type pg from 'pg';
import { ROOMS_MIGRATION } from './postgres-rooms.js';
import { foldRoomNames, type Sql } from './rooms-migration.js';

const MIGRATIONS: readonly (string | ((db: Sql) => Promise<void>))[] = [
  `CREATE TABLE users (
     name TEXT NOT NULL PRIMARY KEY,
     password_hash TEXT NOT NULL,
     created_at BIGINT NOT NULL
   );
   CREATE UNIQUE INDEX users_name_lower ON users (lower(name));
   CREATE TABLE sessions (
     token_hash TEXT NOT NULL PRIMARY KEY,
     user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
     expires_at BIGINT NOT NULL
   );
   CREATE INDEX sessions_user ON sessions(user_name);
   CREATE INDEX sessions_expiry ON sessions(expires_at);
   CREATE TABLE rooms (
     name TEXT NOT NULL PRIMARY KEY,
     last_seq BIGINT NOT NULL
   );
   CREATE TABLE messages (
     room TEXT NOT NULL,
     seq BIGINT NOT NULL,
     sender TEXT NOT NULL,
     body TEXT NOT NULL,
     sent TEXT NOT NULL,
     at BIGINT NOT NULL,
     PRIMARY KEY (room, seq)
   );
   CREATE INDEX messages_at ON messages(at);
   CREATE TABLE dedupe (
     user_name TEXT NOT NULL,
     ref TEXT NOT NULL,
     room TEXT NOT NULL,
     seq BIGINT NOT NULL,
     at BIGINT NOT NULL,
     PRIMARY KEY (user_name, ref)
   );
   CREATE INDEX dedupe_at ON dedupe(at);`,
  // 2: removed accounts keep their name (reserved) and are recorded for running servers.
  `ALTER TABLE users ADD COLUMN removed_at BIGINT;
   CREATE TABLE user_removals (
     id BIGSERIAL PRIMARY KEY,
     user_name TEXT NOT NULL,
     at BIGINT NOT NULL
   );
   CREATE INDEX user_removals_at ON user_removals(at);`,
  // 3: room names are case-insensitive (rooms-migration.ts).
  foldRoomNames,
  // 4: the write probe's one row (store/health.ts).
  `CREATE TABLE IF NOT EXISTS health (
     id INT NOT NULL PRIMARY KEY,
     at BIGINT NOT NULL
   );`,
  // 5: rooms with members (store/membership.ts, postgres-rooms.ts).
  ROOMS_MIGRATION,
];

/** Arbitrary constant for pg_advisory_xact_lock: nodes starting together migrate one at a time. */
const MIGRATION_LOCK = 0x7061726c; // "parl"

/** A migration's view of the database (rooms-migration.ts): `?` placeholders become `$n`. */
const sqlOf = (c: pg.ClientBase): Sql => {
  const numbered = (sql: string) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  };
  return {
    all: async <R>(sql: string, params: unknown[] = []) => (await c.query(numbered(sql), params)).rows as R[],
    run: async (sql: string, params: unknown[] = []) => {
      await c.query(numbered(sql), params);
    },
  };
};

/** Brings `schema` up to the latest migration, inside the caller's transaction (`c`). */
export async function migrate(c: pg.ClientBase, schema: string): Promise<void> {
  await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
  await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await c.query('CREATE TABLE IF NOT EXISTS parley_migrations (version INT NOT NULL PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
  const { rows } = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM parley_migrations');
  for (let v = rows[0]?.v ?? 0; v < MIGRATIONS.length; v++) {
    const migration = MIGRATIONS[v];
    if (typeof migration === 'string') await c.query(migration);
    else if (migration !== undefined) await migration(sqlOf(c));
    await c.query('INSERT INTO parley_migrations (version) VALUES ($1)', [v + 1]);
  }
}
