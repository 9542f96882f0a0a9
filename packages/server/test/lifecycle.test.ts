/**
 * The real `parley` CLI in child processes: graceful shutdown on SIGTERM/SIGINT, TLS with a
 * certificate from `parley gencert`, configuration precedence and rejection, and offline
 * account management with `parley user add|list|remove`. Also unit tests of loadConfig.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CloseCodes } from '@parley/protocol';
import { cleanEnv, CLI, type Exit, freePort, freePorts, type LogLine, runCli, type RunningServer, startCli, tempDir } from '@parley/testing/cli';
import { CONFIG_KEYS, ConfigError, envName, flagName, loadConfig } from '../src/config.js';
import { waitFor } from '@parley/testing/cluster';
import { account, api, connect, type TestClient } from '@parley/testing/helpers';
import { dropSchema, freshSchema, PG_URL } from '@parley/testing/pg';
import pg from 'pg';
import Database from 'better-sqlite3';

/** Resolves with the exit, or with 'timeout' if the process is still running after ms. */
const exitWithin = (s: RunningServer, ms: number): Promise<Exit | 'timeout'> =>
  Promise.race([s.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);

async function shutdownTest(signal: NodeJS.Signals): Promise<void> {
  const dataDir = tempDir();
  const port = await freePort();
  const srv = await startCli(['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--shutdown-timeout-ms', '3000']);
  assert.equal(srv.port, port);
  const a = await account(srv);
  const b = await account(srv);
  const ca = await connect(srv, a.otp);
  const cb = await connect(srv, b.otp);
  cb.send({ type: 'join', payload: { room: 'second' }, ref: 1 });
  await cb.next('joined', (p) => p.room === 'second');
  // Both connections are live: a message goes round.
  ca.send({ type: 'send_message', payload: { message: 'before shutdown' } });
  await cb.next('new_message', (p) => p.message === 'before shutdown');

  srv.proc.kill(signal);
  const [closeA, closeB] = await Promise.all([ca.waitClose(5000), cb.waitClose(5000)]);
  assert.equal(closeA.code, CloseCodes.going_away);
  assert.equal(closeB.code, CloseCodes.going_away);
  const exit = await exitWithin(srv, 5000);
  assert.notEqual(exit, 'timeout', 'the process exits within 5 s');
  assert.deepEqual(exit, { code: 0, signal: null });

  const lines = srv.lines;
  assert.ok(
    lines.some((l) => l.msg === 'shutting down' && l.signal === signal),
    `a "shutting down" line names ${signal}`,
  );
  assert.ok(lines.some((l) => l.msg === 'parley stopped'));
  for (const [acct, rooms] of [
    [a, 1],
    [b, 2],
  ] as const) {
    const connects = lines.filter((l) => l.event === 'connect' && l.user === acct.name);
    assert.equal(connects.length, 1, `one connect line for ${acct.name}`);
    const disconnects = lines.filter((l) => l.event === 'disconnect' && l.user === acct.name);
    assert.equal(disconnects.length, 1, `one disconnect line for ${acct.name}`);
    const d = disconnects[0] as LogLine;
    assert.equal(d.code, CloseCodes.going_away);
    assert.equal(d.rooms, rooms);
    assert.equal(d.msg, 'disconnect');
  }
  assert.equal(srv.stderr(), '');
}

describe('graceful shutdown', () => {
  test('SIGTERM closes every client with 1001, logs each disconnect and exits 0', () => shutdownTest('SIGTERM'));
  test('SIGINT does the same', () => shutdownTest('SIGINT'));

  test('SIGTERM under load: every message the server accepted is acked (or refused with a code) before 1001; none is stored unanswered', async () => {
    const dataDir = tempDir();
    const port = await freePort();
    const srv = await startCli(['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--shutdown-timeout-ms', '5000', '--rate-limit-per-sec', '5000', '--rate-limit-burst', '5000', '--user-rate-limit-per-sec', '0']);
    const senders = await Promise.all(Array.from({ length: 6 }, async () => connect(srv, (await account(srv)).otp)));
    let signalled = false;
    let sentAfter = 0;
    const sent = new Map<string, TestClient>();
    const timers = senders.map((c, i) => {
      let n = 0;
      return setInterval(() => {
        if (c.closed !== undefined || c.ws.readyState !== 1) return;
        for (let k = 0; k < 4; k++) {
          const text = `load-${i}-${n++}`;
          sent.set(text, c);
          c.send({ type: 'send_message', payload: { message: text }, ref: text });
          if (signalled) sentAfter++;
        }
      }, 2);
    });
    try {
      await senders[0]?.waitCount('ack', 50, 20_000);
      srv.proc.kill('SIGTERM');
      signalled = true;
      const closes = await Promise.all(senders.map((c) => c.waitClose(10_000)));
      for (const close of closes) assert.equal(close.code, CloseCodes.going_away, 'each sender is closed with 1001');
    } finally {
      for (const t of timers) clearInterval(t);
    }
    assert.deepEqual(await exitWithin(srv, 10_000), { code: 0, signal: null });
    assert.ok(sentAfter > 0, 'sends went on after the signal');
    const acked = new Set<string>();
    const refused = new Map<string, string>();
    for (const c of senders) {
      for (const a of c.all('ack')) acked.add(String(a.ref));
      for (const e of c.all('error')) if (e.ref !== undefined) refused.set(String(e.ref), e.code);
    }
    for (const code of refused.values()) assert.equal(code, 'shutting_down', 'a frame read during the shutdown is refused with shutting_down');
    const db = new Database(join(dataDir, 'parley.db'), { readonly: true });
    const stored = db.prepare<[], { body: string }>("SELECT body FROM messages WHERE body LIKE 'load-%'").all().map((r) => r.body);
    db.close();
    assert.equal(new Set(stored).size, stored.length, 'nothing stored twice');
    const unanswered = stored.filter((t) => !acked.has(t));
    assert.deepEqual(unanswered.slice(0, 5), [], `every stored message was acked (${unanswered.length} of ${stored.length} were not)`);
    for (const t of acked) assert.ok(stored.includes(t), `acked ${t} is stored`);
    for (const t of refused.keys()) assert.ok(!stored.includes(t), `refused ${t} is not stored`);
    assert.ok(acked.size >= 50);
  });

  test('shutdown with no clients exits 0 and /healthz stops answering', async () => {
    const srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()]);
    const h = await api(srv.url, '/healthz', undefined, { method: 'GET' });
    assert.equal(h.status, 200);
    assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
    await assert.rejects(fetch(srv.url + '/healthz'));
  });
});

describe('logs', () => {
  test('a Postgres connection lost while idle is logged as a warning, and the next request works', async () => {
    const schema = freshSchema();
    const since = new Date();
    const srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()], {
      PARLEY_STORE: 'postgres',
      PARLEY_POSTGRES_URL: PG_URL,
      PARLEY_POSTGRES_SCHEMA: schema,
    });
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      const killed = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'parley' AND backend_start >= $1", [since]);
      assert.ok((killed.rowCount ?? 0) >= 1, 'the server had an idle Postgres connection');
      const warning = () => srv.lines.find((l) => l.msg === 'store background work failed');
      await waitFor(async () => warning() !== undefined, 'the warning', 5_000);
      assert.equal(warning()?.level, 40, 'a warning');
      assert.equal(warning()?.store, 'postgres');
      const reg = await api(srv.url, '/register', { username: 'after-loss', password: 'correct horse battery' });
      assert.equal(reg.status, 201);
    } finally {
      await admin.end();
      await srv.stop('SIGTERM');
      await dropSchema(schema);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// TLS

interface HttpsResult {
  status: number;
  body: any;
}

function httpsJson(url: string, method: string, body: unknown, ca: string | undefined): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(url, { method, ca, headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('TLS', () => {
  test('gencert writes a pair; the server speaks https and wss with it', async () => {
    const out = join(tempDir(), 'certs');
    const gen = await runCli(['gencert', '--out', out], { timeoutMs: 30_000 });
    assert.equal(gen.code, 0, gen.stderr);
    const certFile = join(out, 'server.crt');
    const keyFile = join(out, 'server.key');
    assert.ok(existsSync(certFile) && existsSync(keyFile), gen.stdout);
    const cert = readFileSync(certFile, 'utf8');
    assert.match(cert, /-----BEGIN CERTIFICATE-----/);
    assert.match(readFileSync(keyFile, 'utf8'), /-----BEGIN (RSA )?PRIVATE KEY-----/);
    assert.equal(statSync(keyFile).mode & 0o077, 0, 'the key is readable by its owner only');

    const srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir(), '--tls-cert', certFile, '--tls-key', keyFile]);
    try {
      assert.match(srv.url, /^https:\/\//);
      const health = await httpsJson(`${srv.url}/healthz`, 'GET', undefined, cert);
      assert.equal(health.status, 200);
      assert.deepEqual(health.body, { status: 'ok' });
      // Without the certificate as a CA the self-signed certificate is refused: it really is TLS.
      await assert.rejects(httpsJson(`${srv.url}/healthz`, 'GET', undefined, undefined), /self[- ]signed|certificate/i);

      const creds = { username: 'tls_user', password: 'tls password' };
      assert.equal((await httpsJson(`${srv.url}/register`, 'POST', creds, cert)).status, 201);
      const login = await httpsJson(`${srv.url}/login`, 'POST', creds, cert);
      assert.equal(login.status, 200);
      let client: TestClient | undefined;
      try {
        client = await connect(srv, login.body.otp as string, { ca: cert });
        assert.match(client.ws.url, /^wss:\/\//);
        client.send({ type: 'send_message', payload: { message: 'over wss' }, ref: 'tls1' });
        const ack = await client.next('ack');
        assert.equal(ack.ref, 'tls1');
        const m = await client.next('new_message', (p) => p.seq === ack.seq);
        assert.equal(m.message, 'over wss');
        assert.equal(m.from, 'tls_user');
      } finally {
        client?.close();
      }
    } finally {
      assert.deepEqual(await srv.stop('SIGTERM'), { code: 0, signal: null });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Configuration

describe('the parley command', () => {
  const shebang = readFileSync(CLI, 'utf8').split('\n', 1)[0] as string;

  test('its #! line runs it with a smaller young generation, and npm start passes node the same flags', async () => {
    const [interpreter, line] = [shebang.slice(2, shebang.indexOf(' ')), shebang.slice(shebang.indexOf(' ') + 1)];
    assert.match(line, /^-S node --max-semi-space-size=\d+$/);
    // What the kernel does with the #! line: the interpreter gets the rest of it as one argument.
    const out = await runCli(['version'], { via: [interpreter, line] });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^\d+\.\d+\.\d+\n$/);
    const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    // exec: the shell npm runs the script in becomes node, so npm's signals reach the server.
    assert.equal(pkg.scripts.start, `exec ${line.slice('-S '.length)} packages/server/dist/src/cli.js start`);
  });
});

describe('configuration via the CLI', () => {
  test('precedence: flag over env over config file', async () => {
    const [portA, portB, portC] = (await freePorts(3)) as [number, number, number];
    const dir = tempDir();
    const file = join(dir, 'parley.json');
    writeFileSync(file, JSON.stringify({ port: portA, host: '127.0.0.1', dataDir: join(dir, 'data') }));

    const cases: { args: string[]; env: Record<string, string>; expect: number; what: string }[] = [
      { args: ['--config', file, '--port', String(portC)], env: { PARLEY_PORT: String(portB) }, expect: portC, what: 'flag' },
      { args: ['--config', file], env: { PARLEY_PORT: String(portB) }, expect: portB, what: 'env' },
      { args: ['--config', file], env: {}, expect: portA, what: 'file' },
      { args: [], env: { PARLEY_CONFIG: file }, expect: portA, what: 'file named by PARLEY_CONFIG' },
    ];
    for (const c of cases) {
      const srv = await startCli(c.args, c.env);
      try {
        assert.equal(srv.port, c.expect, `${c.what}: listening on the expected port`);
        const h = await api(`http://127.0.0.1:${c.expect}`, '/healthz', undefined, { method: 'GET' });
        assert.equal(h.status, 200, c.what);
        assert.deepEqual(h.body, { status: 'ok' });
      } finally {
        assert.deepEqual(await srv.stop(), { code: 0, signal: null });
      }
    }
  });

  test('--port abc is rejected, naming port and --port', async () => {
    const r = await runCli(['start', '--port', 'abc', '--data-dir', tempDir()]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\bport\b/);
    assert.match(r.stderr, /--port\b/);
    assert.match(r.stderr, /abc/);
    assert.equal(r.stdout, '', 'nothing was started');
  });

  test('PARLEY_PING_INTERVAL_MS=-5 is rejected, naming the key and the variable', async () => {
    const r = await runCli(['start', '--port', '0', '--data-dir', tempDir()], { env: { PARLEY_PING_INTERVAL_MS: '-5' } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /pingIntervalMs/);
    assert.match(r.stderr, /PARLEY_PING_INTERVAL_MS/);
  });

  test('an unknown key in the config file is rejected, naming the key', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ port: 0, colour: 'blue' }));
    const r = await runCli(['start', '--config', file, '--data-dir', dir]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /colour/);
    assert.match(r.stderr, /unknown key/);
  });

  test('a config file that is not JSON is rejected', async () => {
    const dir = tempDir();
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ port: 1');
    const r = await runCli(['start', '--config', file, '--data-dir', dir]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(file), r.stderr);
  });

  test('tlsCert without tlsKey is rejected', async () => {
    const dir = tempDir();
    const cert = join(dir, 'server.crt');
    writeFileSync(cert, 'not used');
    const r = await runCli(['start', '--port', '0', '--data-dir', dir, '--tls-cert', cert]);
    assert.notEqual(r.code, 0);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /tlsKey/);
    assert.match(r.stderr, /together/);
  });
});

describe('loadConfig', () => {
  test('defaults', () => {
    const c = loadConfig();
    assert.equal(c.host, '0.0.0.0');
    assert.equal(c.port, 8080);
    assert.equal(c.dataDir, './data');
    assert.equal(c.store, 'sqlite');
    assert.equal(c.registration, 'open');
    assert.deepEqual(c.allowedOrigins, []);
    assert.equal(c.pingIntervalMs, 25_000);
    assert.equal(c.pongTimeoutMs, 10_000);
    assert.equal(c.maxMessageBytes, 64 * 1024);
    assert.equal(c.maxMessageChars, 4000);
    assert.equal(c.rateLimitPerSec, 20);
    assert.equal(c.rateLimitBurst, 40);
    assert.equal(c.sendQueueMaxBytes, 1024 * 1024);
    assert.equal(c.trustProxy, false);
    assert.equal(c.tlsCert, undefined);
    assert.equal(c.tlsKey, undefined);
    assert.equal(c.logLevel, 'info');
  });

  test('the process environment is read only when passed', () => {
    const saved = process.env.PARLEY_PORT;
    process.env.PARLEY_PORT = '1234';
    try {
      assert.equal(loadConfig().port, 8080);
      assert.equal(loadConfig({ env: process.env }).port, 1234);
    } finally {
      if (saved === undefined) delete process.env.PARLEY_PORT;
      else process.env.PARLEY_PORT = saved;
    }
  });

  test('precedence: defaults < file < env < overrides, key by key', () => {
    const file = join(tempDir(), 'c.json');
    writeFileSync(file, JSON.stringify({ port: 1111, pingIntervalMs: 1000, registration: 'closed', maxMessageChars: 50 }));
    const env = { PARLEY_PORT: '2222', PARLEY_PING_INTERVAL_MS: '3000' };
    const all = loadConfig({ file, env, overrides: { port: '3333' } });
    assert.equal(all.port, 3333);
    assert.equal(all.pingIntervalMs, 3000);
    assert.equal(all.registration, 'closed');
    assert.equal(all.maxMessageChars, 50);
    assert.equal(all.pongTimeoutMs, 10_000);
    assert.equal(loadConfig({ file, env }).port, 2222);
    assert.equal(loadConfig({ file }).port, 1111);
    assert.equal(loadConfig({ file }).pingIntervalMs, 1000);
    // An undefined override does not hide a lower source.
    assert.equal(loadConfig({ file, env, overrides: { port: undefined } }).port, 2222);
  });

  test('allowedOrigins: comma list, trimmed, empty items dropped; * allowed; bad origins rejected', () => {
    assert.deepEqual(loadConfig({ env: { PARLEY_ALLOWED_ORIGINS: 'https://a.example.com, http://b.example:8080,,' } }).allowedOrigins, [
      'https://a.example.com',
      'http://b.example:8080',
    ]);
    assert.deepEqual(loadConfig({ overrides: { allowedOrigins: '*' } }).allowedOrigins, ['*']);
    assert.deepEqual(loadConfig({ overrides: { allowedOrigins: ['https://c.example'] } }).allowedOrigins, ['https://c.example']);
    assert.deepEqual(loadConfig({ env: { PARLEY_ALLOWED_ORIGINS: '' } }).allowedOrigins, []);
    assert.throws(
      () => loadConfig({ env: { PARLEY_ALLOWED_ORIGINS: 'https://ok.example,chat.example.com' } }),
      (err: unknown) => err instanceof ConfigError && /allowedOrigins/.test(err.message) && /chat\.example\.com/.test(err.message),
    );
    assert.throws(() => loadConfig({ overrides: { allowedOrigins: 'https://a.example/path' } }), ConfigError);
  });

  test('registration is open or closed', () => {
    assert.equal(loadConfig({ env: { PARLEY_REGISTRATION: 'closed' } }).registration, 'closed');
    assert.equal(loadConfig({ overrides: { registration: 'open' } }).registration, 'open');
    assert.throws(
      () => loadConfig({ env: { PARLEY_REGISTRATION: 'invite' } }),
      (err: unknown) => err instanceof ConfigError && /registration/.test(err.message) && /PARLEY_REGISTRATION/.test(err.message) && /invite/.test(err.message),
    );
  });

  test('errors name the key and its source', () => {
    const file = join(tempDir(), 'e.json');
    writeFileSync(file, JSON.stringify({ maxMessageBytes: 10 }));
    assert.throws(
      () => loadConfig({ file }),
      (err: unknown) => err instanceof ConfigError && err.code === 'invalid_config' && /maxMessageBytes/.test(err.message) && err.message.includes(file),
    );
    assert.throws(
      () => loadConfig({ overrides: { pongTimeoutMs: 'soon' } }),
      (err: unknown) => err instanceof ConfigError && /pongTimeoutMs/.test(err.message) && /--pong-timeout-ms/.test(err.message),
    );
    assert.throws(
      () => loadConfig({ overrides: { port: 70000 } }),
      (err: unknown) => err instanceof ConfigError && /port/.test(err.message),
    );
    assert.throws(
      () => loadConfig({ overrides: { tlsKey: '/k.pem' } }),
      (err: unknown) => err instanceof ConfigError && /tlsCert/.test(err.message),
    );
    assert.equal(loadConfig({ overrides: { tlsCert: '/c.pem', tlsKey: '/k.pem' } }).tlsKey, '/k.pem');
    assert.equal(loadConfig({ env: { PARLEY_TLS_CERT: '', PARLEY_TLS_KEY: '' } }).tlsCert, undefined, 'an empty path means unset');
  });

  test('trustProxy takes true/false/1/0', () => {
    assert.equal(loadConfig({ env: { PARLEY_TRUST_PROXY: 'true' } }).trustProxy, true);
    assert.equal(loadConfig({ env: { PARLEY_TRUST_PROXY: '1' } }).trustProxy, true);
    assert.equal(loadConfig({ env: { PARLEY_TRUST_PROXY: '0' } }).trustProxy, false);
    assert.throws(() => loadConfig({ env: { PARLEY_TRUST_PROXY: 'yes' } }), ConfigError);
  });

  test('env and flag names', () => {
    assert.equal(envName('pingIntervalMs'), 'PARLEY_PING_INTERVAL_MS');
    assert.equal(envName('port'), 'PARLEY_PORT');
    assert.equal(flagName('pingIntervalMs'), 'ping-interval-ms');
    assert.equal(flagName('tlsCert'), 'tls-cert');
  });
});

// ---------------------------------------------------------------------------------------------
// parley user add | list | remove

async function listUsers(dataDir: string): Promise<string[]> {
  const r = await runCli(['user', 'list', '--json', '--data-dir', dataDir]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string; createdAt: string }[]).map((u) => u.name);
}

describe('parley user', () => {
  test('add, list, log in, remove', async () => {
    const dataDir = tempDir();
    const add1 = await runCli(['user', 'add', 'alice', '--data-dir', dataDir], { env: { PARLEY_USER_PASSWORD: 'alice password' } });
    assert.equal(add1.code, 0, add1.stderr);
    assert.match(add1.stdout, /added user alice/);
    // From stdin (the trailing newline is not part of the password).
    const add2 = await runCli(['user', 'add', 'bob', '--data-dir', dataDir], { input: 'bob password\n' });
    assert.equal(add2.code, 0, add2.stderr);

    assert.deepEqual(await listUsers(dataDir), ['alice', 'bob']);
    const plain = await runCli(['user', 'list', '--data-dir', dataDir]);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^alice\t\d{4}-\d\d-\d\dT/m);
    assert.match(plain.stdout, /^bob\t/m);

    const dup = await runCli(['user', 'add', 'alice', '--data-dir', dataDir], { env: { PARLEY_USER_PASSWORD: 'another password' } });
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /exists/);

    // A server on that data dir, with registration closed, lets both log in.
    const srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', dataDir, '--registration', 'closed']);
    try {
      const reg = await api(srv.url, '/register', { username: 'carol', password: 'carol password' });
      assert.equal(reg.status, 403);
      assert.equal(reg.body.error.code, 'registration_closed');
      const wrong = await api(srv.url, '/login', { username: 'alice', password: 'not her password' });
      assert.equal(wrong.status, 401);
      const login = await api<{ token: string; otp: string }>(srv.url, '/login', { username: 'alice', password: 'alice password' });
      assert.equal(login.status, 200);
      const client = await connect(srv, login.body.otp);
      client.close();
      const bob = await api(srv.url, '/login', { username: 'bob', password: 'bob password' });
      assert.equal(bob.status, 200, 'the stdin password has no trailing newline');

      // Removing alice (while the server runs) deletes her account and her sessions.
      const rm = await runCli(['user', 'remove', 'alice', '--data-dir', dataDir]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.match(rm.stdout, /removed user alice/);
      assert.deepEqual(await listUsers(dataDir), ['bob']);
      const t = await api(srv.url, '/ticket', undefined, { token: login.body.token });
      assert.equal(t.status, 401, 'her token no longer works');
      const again = await api(srv.url, '/login', { username: 'alice', password: 'alice password' });
      assert.equal(again.status, 401);
    } finally {
      assert.deepEqual(await srv.stop(), { code: 0, signal: null });
    }

    const rm2 = await runCli(['user', 'remove', 'alice', '--data-dir', dataDir]);
    assert.notEqual(rm2.code, 0);
    assert.match(rm2.stderr, /no user alice/);
  });

  test('a short password or an invalid name is refused', async () => {
    const dataDir = tempDir();
    const short = await runCli(['user', 'add', 'dave', '--data-dir', dataDir], { env: { PARLEY_USER_PASSWORD: 'short' } });
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /at least 8/);
    const shortStdin = await runCli(['user', 'add', 'dave', '--data-dir', dataDir], { input: 'tiny\n' });
    assert.notEqual(shortStdin.code, 0);
    const badName = await runCli(['user', 'add', 'not a name!', '--data-dir', dataDir], { env: { PARLEY_USER_PASSWORD: 'long enough password' } });
    assert.notEqual(badName.code, 0);
    assert.match(badName.stderr, /user names/);
    const tooLong = await runCli(['user', 'add', 'x'.repeat(33), '--data-dir', dataDir], { env: { PARLEY_USER_PASSWORD: 'long enough password' } });
    assert.notEqual(tooLong.code, 0);
    assert.deepEqual(await listUsers(dataDir), [], 'nothing was added');
  });
});

describe('every config key reaches the command line', () => {
  test('`parley start --help` lists a --<kebab-case> flag for every key, and a flag sets it', async () => {
    const help = await runCli(['start', '--help']);
    assert.equal(help.code, 0);
    for (const key of CONFIG_KEYS) assert.match(help.stdout, new RegExp(`--${flagName(key)}\\b`), `--${flagName(key)} for ${key}`);
    // And the flag is honoured: an invalid value for a non-port key is rejected naming that flag.
    const bad = await runCli(['start', '--max-message-chars', '0']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /maxMessageChars \(--max-message-chars\)/);
  });
});

// ---------------------------------------------------------------------------------------------
// The command's manners: version, prompts, one-line failures, typos in the environment

describe('the parley command, as a user meets it', () => {
  test('--version and -V print the version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${pkg.version}\n`);
    }
  });

  test('an empty password is "required", not "at least 8 characters"', async () => {
    const dataDir = tempDir();
    for (const r of [await runCli(['user', 'add', 'erin', '--data-dir', dataDir], { env: { PARLEY_USER_PASSWORD: '' } }), await runCli(['user', 'add', 'erin', '--data-dir', dataDir], { input: '' })]) {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /required/);
      assert.doesNotMatch(r.stderr, /at least/);
    }
  });

  test('on a terminal, `parley user add` prompts twice and does not echo the password', async () => {
    const dataDir = tempDir();
    const password = 'typed at a terminal';
    // script(1) gives the command a pseudo-terminal; what we write to its stdin is "typed".
    const cmd = [process.execPath, CLI, 'user', 'add', 'tty_user', '--data-dir', dataDir].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const waitFor = async (re: RegExp, what: string) => {
      for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
      assert.match(out, re, what);
    };
    const exited = new Promise<number | null>((r) => child.once('close', r));
    await waitFor(/Password: /, 'the first prompt');
    child.stdin.write(`${password}\r`);
    await waitFor(/Repeat password: /, 'the second prompt');
    child.stdin.write(`${password}\r`);
    assert.equal(await exited, 0, out);
    assert.match(out, /added user tty_user/);
    assert.ok(!out.includes(password), `the password is never echoed: ${JSON.stringify(out)}`);
    assert.deepEqual(await listUsers(dataDir), ['tty_user']);
    const srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', dataDir]);
    try {
      assert.equal((await api(srv.url, '/login', { username: 'tty_user', password })).status, 200);
    } finally {
      await srv.stop();
    }
  });

  test('a port in use: one line naming the port, exit 1, no stack trace', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    try {
      const r = await runCli(['start', '--host', '127.0.0.1', '--port', String(port), '--data-dir', tempDir()]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^parley: .*port ${port} is in use\\n$`));
      assert.equal(r.stdout, '', 'no JSON log line');
    } finally {
      busy.close();
    }
  });

  test('an unknown PARLEY_* variable is refused, naming it and the nearest key; PARLEY_TEST_* is the test suite\'s', async () => {
    const typo = await runCli(['start', '--port', '0', '--data-dir', tempDir()], { env: { PARLEY_PROT: '9000' } });
    assert.equal(typo.code, 2, typo.stderr);
    assert.match(typo.stderr, /unknown environment variable PARLEY_PROT; did you mean PARLEY_PORT\?/);
    assert.equal(typo.stdout, '');
    assert.throws(() => loadConfig({ env: { PARLEY_RATE_LIMIT: '5' } }), (err: unknown) => err instanceof ConfigError && /PARLEY_RATE_LIMIT\b/.test(err.message));
    assert.equal(loadConfig({ env: { PARLEY_TEST_PG_URL: 'postgres://x', PARLEY_CONFIG: undefined, PARLEY_USER_PASSWORD: 'x', OTHER: '1' } }).port, 8080);
  });

  test('gencert: the key is 0600 even when an older key file was readable by others; certs/ is ignored by git', async () => {
    const out = join(tempDir(), 'certs');
    mkdirSync(out);
    writeFileSync(join(out, 'server.key'), 'old key', { mode: 0o644 });
    chmodSync(join(out, 'server.key'), 0o644);
    const gen = await runCli(['gencert', '--out', out], { timeoutMs: 30_000 });
    assert.equal(gen.code, 0, gen.stderr);
    assert.equal(statSync(join(out, 'server.key')).mode & 0o777, 0o600);
    assert.match(readFileSync(join(out, 'server.key'), 'utf8'), /PRIVATE KEY/);
    const ignore = readFileSync(new URL('../../../../.gitignore', import.meta.url), 'utf8').split('\n');
    assert.ok(ignore.includes('certs/'), '.gitignore lists certs/');
  });

  test('SIGTERM to the PID of `npm start` stops the server gracefully (nothing is left on the port)', async () => {
    const port = await freePort();
    const root = fileURLToPath(new URL('../../../../', import.meta.url));
    // --ignore-scripts: no prestart build (the suite built already); the start script is the same.
    const npm = spawn('npm', ['start', '--ignore-scripts', '--silent'], {
      cwd: root,
      env: cleanEnv({ PARLEY_HOST: '127.0.0.1', PARLEY_PORT: String(port), PARLEY_DATA_DIR: tempDir() }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    npm.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((r) => npm.once('close', r));
    for (let i = 0; i < 300 && !out.includes('parley listening'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /parley listening/);
    assert.equal((await api(`http://127.0.0.1:${port}`, '/healthz', undefined, { method: 'GET' })).status, 200);
    npm.kill('SIGTERM');
    assert.equal(await exited, 0, 'npm exits 0 once the server has stopped');
    assert.match(out, /"signal":"SIGTERM".*"msg":"shutting down"/);
    assert.match(out, /parley stopped/);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'nothing listens on the port any more');
  });
});
