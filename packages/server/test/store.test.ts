import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { waitFor } from '@parley/testing/cluster';
import { storeContract } from './store.contract.js';
import { dropSchema, freshSchema, PG_URL } from '@parley/testing/pg';

storeContract('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-store-'));
  const file = join(dir, 'parley.db');
  const open = async () => {
    const s = new SqliteStore(file);
    await s.init();
    return s;
  };
  const forgetMigrationsAfter = async (version: number) => {
    const db = new Database(file);
    if (version < 5) db.exec(UNDO_MIGRATION_5);
    db.pragma(`user_version = ${version}`);
    db.close();
  };
  return { open, reopen: open, destroy: async () => rmSync(dir, { recursive: true, force: true }), forgetMigrationsAfter };
});

/** What migration 5 (rooms with members) added, taken away again: a database as version 4 left it. */
const UNDO_MIGRATION_5 = `
  DROP TABLE members; DROP TABLE bans;
  ALTER TABLE rooms DROP COLUMN visibility; ALTER TABLE rooms DROP COLUMN title;
  ALTER TABLE rooms DROP COLUMN created_by; ALTER TABLE rooms DROP COLUMN created_at;
  ALTER TABLE messages DROP COLUMN kind;`;

storeContract('postgres', async () => {
  const schema = freshSchema();
  const open = async () => {
    const s = new PostgresStore({ url: PG_URL, schema, poolSize: 4 });
    await s.init();
    return s;
  };
  const forgetMigrationsAfter = async (version: number) => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    if (version < 5) await c.query(`SET search_path = ${schema}; ${UNDO_MIGRATION_5}`);
    await c.query(`DELETE FROM ${schema}.parley_migrations WHERE version > $1`, [version]);
    await c.end();
  };
  return { open, reopen: open, destroy: () => dropSchema(schema), forgetMigrationsAfter };
});

test('sqlite: a worker thread checkpoints the write-ahead log, not the writer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-ckpt-'));
  const file = join(dir, 'parley.db');
  const store = new SqliteStore(file);
  await store.init();
  try {
    const before = statSync(file).size;
    // Far fewer WAL pages than the writer's own auto-checkpoint size (10,000): only the
    // checkpointer can move them into the database file.
    for (let i = 0; i < 20; i++) {
      await store.appendMessages(Array.from({ length: 50 }, (_, k) => ({ room: `ckpt${k}`, from: 'u', message: 'x'.repeat(200), sent: new Date().toISOString(), ref: undefined })));
    }
    const walPages = statSync(`${file}-wal`).size / 4096;
    assert.ok(walPages > 10 && walPages < 10_000, `WAL holds ${walPages} pages`);
    await waitFor(async () => statSync(file).size > before, 'the database file to grow: the log checkpointed', 5_000);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('postgres: an idle pooled connection that dies is reported, and the next call gets a new one', async () => {
  const schema = freshSchema();
  const name = `parley-test-${schema}`;
  const store = new PostgresStore({ url: PG_URL, schema, poolSize: 2, applicationName: name });
  const errors: Error[] = [];
  store.onBackgroundError = (err) => errors.push(err);
  await store.init();
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await store.createUser('idle', 'hash');
    const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
    assert.ok((killed.rowCount ?? 0) >= 1, 'the store had an idle connection');
    await waitFor(async () => errors.length >= 1, 'the lost connection to be reported', 5_000);
    assert.match(errors[0]?.message ?? '', /terminat/i);
    assert.equal((await store.getUser('idle'))?.name, 'idle', 'the next call works on a new connection');
  } finally {
    await admin.end();
    await store.close();
    await dropSchema(schema);
  }
});
