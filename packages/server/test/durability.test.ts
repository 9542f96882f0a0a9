/**
 * An ack means the message is on disk: SQLite syncs every commit (synchronous = FULL) and
 * Postgres commits as the server does (synchronous_commit on by default) unless
 * `durability: normal` trades that away; the Postgres timeouts reach every session; and an acked
 * message survives the process being killed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pg from 'pg';
import { freePort, startCli, tempDir } from '@parley/testing/cli';
import { account, connect, startTestServer, chat } from '@parley/testing/helpers';
import { dropSchema, freshSchema, PG_URL } from '@parley/testing/pg';
import { ConfigError, loadConfig } from '../src/config.js';
import { createStore } from '../src/store/index.js';
import { PostgresStore } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';

/** SQLite's `synchronous` values. */
const NORMAL = 1;
const FULL = 2;

describe('SQLite durability', () => {
  test('synchronous is FULL by default, NORMAL with durability: normal', async () => {
    const dir = tempDir();
    const full = new SqliteStore(join(dir, 'full.db'));
    const normal = new SqliteStore(join(dir, 'normal.db'), { durability: 'normal' });
    await full.init();
    await normal.init();
    try {
      assert.equal(full.pragma('synchronous'), FULL);
      assert.equal(normal.pragma('synchronous'), NORMAL);
    } finally {
      await full.close();
      await normal.close();
    }
  });

  test('the server\'s store follows the durability key', async () => {
    for (const [durability, expected] of [[undefined, FULL], ['full', FULL], ['normal', NORMAL]] as const) {
      const server = await startTestServer(durability === undefined ? {} : { durability });
      try {
        assert.equal(server.config.durability, durability ?? 'full');
        assert.ok(server.store instanceof SqliteStore);
        assert.equal(server.store.pragma('synchronous'), expected, `durability ${durability ?? '(default)'}`);
      } finally {
        await server.stop();
      }
    }
  });

  test('an acked message survives the process being killed (SIGKILL, no shutdown)', async () => {
    const dataDir = tempDir();
    const args = async () => ['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', dataDir, '--rate-limit-burst', '1000', '--user-rate-limit-per-sec', '0'];
    const first = await startCli(await args());
    const n = 50;
    let seqs: number[];
    try {
      const a = await account(first);
      const c = await connect(first, a.otp);
      for (let i = 0; i < n; i++) c.send({ type: 'send_message', payload: { message: `kept ${i}` }, ref: `durable-${i}` });
      seqs = [];
      for (let i = 0; i < n; i++) seqs.push((await c.next('ack', (p) => p.ref === `durable-${i}`)).seq);
      const exit = await first.stop('SIGKILL');
      assert.equal(exit.signal, 'SIGKILL');
    } finally {
      await first.stop('SIGKILL');
    }
    const second = await startCli(await args());
    try {
      const a = await account(second);
      const c = await connect(second, a.otp);
      c.send({ type: 'history', payload: { room: 'general', limit: 100 } });
      const page = (await c.next('history')).messages;
      assert.deepEqual(chat(page).map((m) => m.seq).reverse(), seqs, 'every acked message, with its seq');
      assert.deepEqual(chat(page).map((m) => m.message).reverse(), Array.from({ length: n }, (_, i) => `kept ${i}`));
      c.close();
    } finally {
      await second.stop();
    }
  });
});

describe('Postgres durability and timeouts', () => {
  const serverDefault = async (name: string): Promise<string> => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      return (await c.query<Record<string, string>>(`SHOW ${name}`)).rows[0]?.[name] ?? '';
    } finally {
      await c.end();
    }
  };

  test('synchronous_commit is the server\'s own by default (on), off with durability: normal', async () => {
    const schema = freshSchema();
    const full = new PostgresStore({ url: PG_URL, schema });
    const normal = new PostgresStore({ url: PG_URL, schema, durability: 'normal' });
    await full.init();
    await normal.init();
    try {
      const own = await serverDefault('synchronous_commit');
      assert.equal(own, 'on', 'the test database commits synchronously');
      assert.equal(await full.setting('synchronous_commit'), own);
      assert.equal(await normal.setting('synchronous_commit'), 'off');
    } finally {
      await full.close();
      await normal.close();
      await dropSchema(schema);
    }
  });

  test('the config\'s timeouts and durability reach every session of the store', async () => {
    const schema = freshSchema();
    const base = { store: 'postgres', postgresUrl: PG_URL, postgresSchema: schema };
    const defaults = createStore(loadConfig({ overrides: base }));
    const set = createStore(loadConfig({ overrides: { ...base, pgStatementTimeoutMs: 1500, pgConnectTimeoutMs: 700, durability: 'normal' } }));
    assert.ok(defaults instanceof PostgresStore && set instanceof PostgresStore);
    await defaults.init();
    await set.init();
    try {
      assert.equal(await defaults.setting('statement_timeout'), '5s');
      assert.equal(await defaults.setting('idle_in_transaction_session_timeout'), '10s');
      assert.equal(await set.setting('statement_timeout'), '1500ms');
      assert.equal(await set.setting('idle_in_transaction_session_timeout'), '3s');
      assert.equal(await set.setting('synchronous_commit'), 'off');
    } finally {
      await defaults.close();
      await set.close();
      await dropSchema(schema);
    }
  });
});

describe('configuration', () => {
  test('durability is full or normal; the timeouts are at least 100 ms', () => {
    assert.equal(loadConfig().durability, 'full');
    assert.equal(loadConfig().pgStatementTimeoutMs, 5000);
    assert.equal(loadConfig().pgConnectTimeoutMs, 5000);
    assert.equal(loadConfig({ env: { PARLEY_DURABILITY: 'normal' } }).durability, 'normal');
    assert.throws(() => loadConfig({ overrides: { durability: 'fast' } }), (err: unknown) => err instanceof ConfigError && /durability \(--durability\)/.test(err.message));
    assert.throws(() => loadConfig({ overrides: { pgStatementTimeoutMs: 0 } }), (err: unknown) => err instanceof ConfigError && /pgStatementTimeoutMs/.test(err.message));
    assert.throws(() => loadConfig({ overrides: { metricsPort: 8080, port: 8080 } }), (err: unknown) => err instanceof ConfigError && /metricsPort must differ from port/.test(err.message));
    assert.equal(loadConfig({ overrides: { metricsPort: 9100 } }).metricsOnMainPort, false);
    assert.equal(loadConfig({ overrides: { metricsPort: 9100, metricsOnMainPort: 'true' } }).metricsOnMainPort, true);
    assert.equal(loadConfig().metricsOnMainPort, true);
  });
});
