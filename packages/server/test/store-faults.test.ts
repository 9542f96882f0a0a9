/**
 * A store that cannot write, for real: SQLite at its page limit (a full disk) and read-only,
 * Postgres cut off and frozen behind a TCP proxy, a statement the database holds too long.
 * Each time: sends are refused `unavailable` (by their ref, never acked), /readyz is 503 and says
 * which driver failed and why, /metrics shows it, the log says so in a few lines however many
 * sends are refused, and everything comes back by itself once the store can write again.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { waitFor } from '@parley/testing/cluster';
import { account, api, connect, startTestServer, type TestClient, type TestServer, chat } from '@parley/testing/helpers';
import { dropSchema, freshSchema, PG_URL } from '@parley/testing/pg';
import { TcpProxy } from '@parley/testing/proxy';
import { loadConfig, startServer, type ParleyServer } from '../src/index.js';
import { pgBackend, PostgresStore } from '../src/store/postgres.js';
import { sqliteBackend, SqliteStore } from '../src/store/sqlite.js';
import { StoreError } from '../src/store/store.js';

/** Limits that never refuse the tests' bursts. */
const OPEN = { rateLimitPerSec: 100_000, rateLimitBurst: 100_000, userRateLimitPerSec: 0 };

interface Line {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A server whose log lines (info and up) the test reads. */
async function loggedServer(overrides: Record<string, unknown>): Promise<{ server: ParleyServer; lines: Line[]; stop: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-faults-'));
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const config = loadConfig({ overrides: { host: '127.0.0.1', port: 0, dataDir, registerMaxPerAddress: 100_000, ...OPEN, ...overrides } });
  const server = await startServer(config, { logger });
  return {
    server,
    lines,
    stop: async () => {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Sends one message and resolves with its answer: the ack's seq, or the error's code. */
async function sendOne(c: TestClient, ref: string, message = `m ${ref}`, timeoutMs = 10_000): Promise<number | string> {
  c.send({ type: 'send_message', payload: { message }, ref });
  let answer: number | string | undefined;
  await waitFor(
    async () => {
      for (const f of c.frames) {
        if (f.type === 'ack' && f.payload.ref === ref) answer = f.payload.seq;
        else if (f.type === 'error' && f.payload.ref === ref) answer = f.payload.code;
      }
      return answer !== undefined;
    },
    `the answer to ${ref}`,
    timeoutMs,
  );
  return answer as number | string;
}

const ready = (base: string) => api(base, '/readyz', undefined, { method: 'GET' });

async function metric(base: string, line: string): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('SQLite that cannot write', () => {
  test('a full disk: sends refused unavailable, /readyz 503 SQLITE_FULL, a bounded log for 200 refusals, back by itself once there is room', async () => {
    const { server, lines, stop } = await loggedServer({});
    try {
      const store = server.store;
      assert.ok(store instanceof SqliteStore);
      const a = await account(server);
      const c = await connect(server, a.otp);
      assert.equal(typeof (await sendOne(c, 'full-0')), 'number');
      // The test seam: the store's own connection may not grow the file past its current size.
      store.pragma('max_page_count = 1');
      let first = -1;
      for (let i = 1; i < 2000 && first < 0; i++) if ((await sendOne(c, `full-${i}`, `${i} ${'x'.repeat(2000)}`)) === 'unavailable') first = i;
      assert.ok(first > 0, 'the database filled up');
      const r = await ready(server.url);
      assert.equal(r.status, 503);
      const { status, store: storeState, driver, reason, broker } = r.body;
      assert.deepEqual({ status, store: storeState, driver, reason, broker }, { status: 'unavailable', store: 'down', driver: 'sqlite', reason: 'SQLITE_FULL', broker: 'up' });
      assert.equal(await metric(server.url, 'parley_store_up'), 0);
      assert.ok(((await metric(server.url, 'parley_store_errors_total{op="append",kind="unavailable"}')) ?? 0) >= 1);

      const warnings = () => lines.filter((l) => l.level >= 40);
      assert.equal(warnings().length, 1, `one warning so far: ${JSON.stringify(warnings())}`);
      const down = warnings()[0] as Line;
      assert.match(down.msg, /^store cannot write \(SQLITE_FULL: database or disk is full\)/);
      assert.equal(down.reason, 'SQLITE_FULL');
      assert.equal(down.err, undefined, 'no error object, no stack');

      // 200 more refused sends.
      for (let i = 0; i < 200; i++) c.send({ type: 'send_message', payload: { message: `refused ${i} ${'x'.repeat(2000)}` }, ref: `refused-${i}` });
      for (let i = 0; i < 200; i++) assert.equal((await c.next('error', (p) => p.ref === `refused-${i}`)).code, 'unavailable');
      assert.equal(c.all('ack').filter((p) => String(p.ref).startsWith('refused')).length, 0, 'nothing refused was acked');
      // The summary comes within STORE_SUMMARY_MS (10 s) and counts them all.
      const summaries = () => lines.filter((l) => l.msg.startsWith('store writes failing: '));
      await waitFor(async () => summaries().reduce((n, l) => n + Number(l.refused), 0) >= 200, 'the summary of the refused sends', 25_000).catch((err: unknown) => {
        throw new Error(`${String(err)}; log: ${JSON.stringify(lines.filter((l) => l.level >= 40 || /store/.test(l.msg)))}`);
      });
      assert.equal(summaries().reduce((n, l) => n + Number(l.refused), 0), 200);
      assert.match(summaries()[0]?.msg ?? '', /^store writes failing: \d+ refused in the last 10 s \(SQLITE_FULL \d+\)$/);
      assert.ok(warnings().length <= 3, `201 refused sends, ${warnings().length} warning lines`);
      assert.ok(lines.every((l) => l.err === undefined && !JSON.stringify(l).includes('    at ')), 'no stack anywhere');

      // Room again: the probe finds it without any traffic.
      store.pragma('max_page_count = 1073741823');
      await waitFor(async () => (await ready(server.url)).status === 200, '/readyz 200 again', 15_000);
      const up = (await ready(server.url)).body;
      assert.equal(up.store, 'up');
      assert.equal(up.driver, undefined);
      assert.equal(up.reason, undefined);
      const back = lines.filter((l) => l.msg.startsWith('store writes succeed again'));
      assert.equal(back.length, 1);
      assert.equal(back[0]?.level, 30, 'info');
      assert.equal(back[0]?.refused, 201);
      assert.equal(await metric(server.url, 'parley_store_up'), 1);
      assert.equal(typeof (await sendOne(c, 'full-after')), 'number');
      c.close();
    } finally {
      await stop();
    }
  });

  test('a read-only database: SQLITE_READONLY, and ready again once it can write', async () => {
    const server = await startTestServer(OPEN);
    try {
      const store = server.store;
      assert.ok(store instanceof SqliteStore);
      const a = await account(server);
      const c = await connect(server, a.otp);
      assert.equal(typeof (await sendOne(c, 'ro-0')), 'number');
      store.pragma('query_only = 1');
      assert.equal(await sendOne(c, 'ro-1'), 'unavailable');
      const r = await ready(server.url);
      assert.equal(r.status, 503);
      assert.equal(r.body.driver, 'sqlite');
      assert.equal(r.body.reason, 'SQLITE_READONLY');
      // An HTTP write is refused the same way (503 unavailable, not 500).
      const reg = await api(server.url, '/register', { username: `ro${process.pid}`, password: 'correct horse' });
      assert.equal(reg.status, 503);
      assert.equal(reg.body.error.code, 'unavailable');
      store.pragma('query_only = 0');
      await waitFor(async () => (await ready(server.url)).status === 200, '/readyz 200 again', 15_000);
      assert.equal(typeof (await sendOne(c, 'ro-2')), 'number');
      c.close();
    } finally {
      await server.stop();
    }
  });
});

/** A TcpProxy in front of the test database. */
const pgProxy = (): Promise<TcpProxy> => {
  const u = new URL(PG_URL);
  return TcpProxy.start(Number(u.port === '' ? 5432 : u.port), u.hostname);
};

describe('Postgres behind a TCP proxy', () => {
  /** A server on a fresh schema, reaching Postgres through a proxy of its own; both gone after `fn`. */
  const withPgServer = async (fn: (server: TestServer, proxy: TcpProxy) => Promise<void>): Promise<void> => {
    const proxy = await pgProxy();
    const schema = freshSchema();
    const server = await startTestServer({ ...OPEN, store: 'postgres', postgresUrl: proxy.url(PG_URL), postgresSchema: schema, pgStatementTimeoutMs: 1000, pgConnectTimeoutMs: 1000 });
    try {
      await fn(server, proxy);
    } finally {
      await server.stop();
      await proxy.close();
      await dropSchema(schema);
    }
  };

  test('cut off: sends refused unavailable, /readyz 503 naming postgres, ready again by itself once the network is back', () =>
    withPgServer(async (server, proxy) => {
      const a = await account(server);
      const c = await connect(server, a.otp);
      const before = await sendOne(c, 'cut-0');
      assert.equal(typeof before, 'number');
      proxy.cut();
      assert.equal(await sendOne(c, 'cut-1'), 'unavailable');
      const r = await ready(server.url);
      assert.equal(r.status, 503);
      assert.equal(r.body.store, 'down');
      assert.equal(r.body.driver, 'postgres');
      assert.ok(typeof r.body.reason === 'string' && r.body.reason.length > 0, `a reason: ${r.body.reason}`);
      proxy.restore();
      await waitFor(async () => (await ready(server.url)).status === 200, '/readyz 200 without traffic', 15_000);
      assert.equal(await sendOne(c, 'cut-2'), (before as number) + 1, 'the refused message took no seq');
      c.close();
    }));

  test('frozen: a send gets unavailable (by its ref) once the timeouts run out, /readyz 503, then 200 and sends again after restore', () =>
    withPgServer(async (server, proxy) => {
      const a = await account(server);
      const c = await connect(server, a.otp);
      assert.equal(typeof (await sendOne(c, 'frozen-0')), 'number');
      proxy.freeze();
      assert.equal(await sendOne(c, 'frozen-1', 'while frozen', 30_000), 'unavailable');
      const r = await ready(server.url);
      assert.equal(r.status, 503);
      assert.equal(r.body.driver, 'postgres');
      assert.match(r.body.reason, /^(query_timeout|connect_timeout|57014)$/);
      proxy.restore();
      await waitFor(async () => (await ready(server.url)).status === 200, '/readyz 200 after restore', 20_000);
      assert.equal(typeof (await sendOne(c, 'frozen-2')), 'number');
      c.send({ type: 'history', payload: { room: 'general' } });
      assert.deepEqual(chat((await c.next('history')).messages).map((m) => m.message), ['m frozen-2', 'm frozen-0'], 'the refused message was not stored');
      c.close();
    }));

  test('a client whose query timed out is destroyed, not returned to the pool with the query hung on it', async () => {
    const proxy = await pgProxy();
    const schema = freshSchema();
    const name = `parley-t-${schema}`;
    const store = new PostgresStore({ url: proxy.url(PG_URL), schema, poolSize: 1, statementTimeoutMs: 500, connectTimeoutMs: 1000, applicationName: name });
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const pids = async () => (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [name])).rows.map((r) => r.pid);
    try {
      await store.init();
      await store.appendMessages([{ room: 'r', from: 'u', message: 'before', sent: new Date().toISOString() }]);
      await waitFor(async () => (await pids()).length === 1, 'one pooled connection');
      const [pid] = await pids();
      proxy.freeze();
      await assert.rejects(
        store.appendMessages([{ room: 'r', from: 'u', message: 'frozen', sent: new Date().toISOString() }]),
        (err: unknown) => err instanceof StoreError && err.code === 'unavailable' && err.backend === 'query_timeout',
      );
      assert.equal(store.healthy, false);
      assert.equal(store.failure?.reason, 'query_timeout');
      proxy.restore();
      const after = await store.appendMessages([{ room: 'r', from: 'u', message: 'after', sent: new Date().toISOString() }]);
      assert.equal(after[0]?.message.seq, 2, 'the frozen batch was rolled back');
      await waitFor(async () => !(await pids()).includes(pid as number), 'the timed-out connection to be closed', 10_000);
      assert.equal(store.healthy, true);
    } finally {
      await store.close();
      await admin.end();
      await proxy.close();
      await dropSchema(schema);
    }
  });

  test('a statement the database holds past statement_timeout is cancelled by the server (57014); the connection stays usable', async () => {
    const schema = freshSchema();
    const name = `parley-t-${schema}`;
    const store = new PostgresStore({ url: PG_URL, schema, poolSize: 1, statementTimeoutMs: 500, applicationName: name });
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const pids = async () => (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [name])).rows.map((r) => r.pid);
    try {
      await store.init();
      assert.equal(await store.setting('statement_timeout'), '500ms');
      await store.appendMessages([{ room: 'locked', from: 'u', message: 'one', sent: new Date().toISOString() }]);
      await waitFor(async () => (await pids()).length === 1, 'one pooled connection');
      const [pid] = await pids();
      // Another session holds the room's row: the store's next append waits on it.
      await admin.query('BEGIN');
      await admin.query(`SELECT * FROM ${schema}.rooms WHERE name = 'locked' FOR UPDATE`);
      await assert.rejects(
        store.appendMessages([{ room: 'locked', from: 'u', message: 'two', sent: new Date().toISOString() }]),
        (err: unknown) => err instanceof StoreError && err.code === 'unavailable' && err.backend === '57014',
      );
      assert.equal(store.failure?.reason, '57014');
      await admin.query('ROLLBACK');
      await waitFor(async () => store.healthy, 'the probe to find the store writable', 10_000);
      const again = await store.appendMessages([{ room: 'locked', from: 'u', message: 'two', sent: new Date().toISOString() }]);
      assert.equal(again[0]?.message.seq, 2);
      assert.deepEqual(await pids(), [pid], 'the same connection, rolled back and reused');
    } finally {
      await admin.query('ROLLBACK').catch(() => undefined);
      await store.close();
      await admin.end();
      await dropSchema(schema);
    }
  });
});

describe('which failures mean the store cannot write', () => {
  test('SQLite: the disk, the file and locks do; a constraint, a bad statement or one of our own errors do not', () => {
    const sqliteError = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ['SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_READONLY_DBMOVED', 'SQLITE_IOERR_WRITE', 'SQLITE_IOERR_FSYNC', 'SQLITE_CANTOPEN', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_CORRUPT', 'SQLITE_NOTADB']) {
      assert.equal(sqliteBackend(sqliteError(code)), code);
    }
    for (const code of ['SQLITE_CONSTRAINT_PRIMARYKEY', 'SQLITE_ERROR', 'SQLITE_MISMATCH', 'SQLITE_TOOBIG', 'SQLITE_RANGE']) assert.equal(sqliteBackend(sqliteError(code)), undefined, code);
    assert.equal(sqliteBackend(new Error('no code')), undefined);
  });

  test('Postgres: connection errors, timeouts, SQLSTATE 08, 53, 57, 58 and 25006 do; a refused value or statement does not', () => {
    const dbError = (code: string) => Object.assign(new pg.DatabaseError(`sqlstate ${code}`, 0, 'error'), { code });
    for (const code of ['08006', '08001', '53100', '53200', '53300', '57014', '57P01', '57P03', '58030', '25006']) assert.equal(pgBackend(dbError(code)), code);
    for (const code of ['23505', '22P02', '22021', '54000', '42P01', '40001', '25P02']) assert.equal(pgBackend(dbError(code)), undefined, code);
    assert.equal(pgBackend(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), 'ECONNREFUSED');
    assert.equal(pgBackend(new Error('Query read timeout')), 'query_timeout');
    assert.equal(pgBackend(new Error('timeout exceeded when trying to connect')), 'connect_timeout');
    assert.equal(pgBackend(new Error('Connection terminated unexpectedly')), 'connection_lost');
    assert.equal(pgBackend(new Error('no seq reserved for room r')), undefined, 'a bug of ours is not an outage');
  });
});

describe('TcpProxy', () => {
  test('forwards, holds bytes while frozen and delivers them on restore, refuses everything while cut', async () => {
    const sockets = new Set<Socket>();
    const echo: Server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const proxy = await TcpProxy.start((echo.address() as { port: number }).port);
    const open = async (): Promise<{ s: Socket; got: () => string; closed: Promise<unknown> }> => {
      const s = tcpConnect(proxy.port, '127.0.0.1');
      s.on('error', () => undefined);
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString()));
      const closed = new Promise((r) => s.once('close', r)); // after a reset too ('error', then 'close')
      await once(s, 'connect');
      return { s, got: () => text, closed };
    };
    try {
      const a = await open();
      a.s.write('one');
      await waitFor(async () => a.got() === 'one', 'the echo');
      assert.equal(proxy.connections, 1);
      proxy.freeze();
      a.s.write('two');
      const b = await open(); // accepted while frozen, but nothing flows
      b.s.write('late');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(a.got(), 'one', 'nothing came back while frozen');
      assert.equal(b.got(), '');
      proxy.restore();
      await waitFor(async () => a.got() === 'onetwo' && b.got() === 'late', 'the held bytes, after restore');
      proxy.cut();
      await a.closed;
      await b.closed;
      assert.equal(proxy.connections, 0);
      const c = await open().catch(() => undefined);
      if (c !== undefined) await c.closed; // accepted by the kernel, then reset at once
      proxy.restore();
      const d = await open();
      d.s.write('three');
      await waitFor(async () => d.got() === 'three', 'forwarding again after restore');
      d.s.destroy();
    } finally {
      await proxy.close();
      for (const s of sockets) s.destroy();
      echo.close();
    }
  });
});
