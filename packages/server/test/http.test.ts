/** Accounts, tokens, tickets and the upgrade guard over real HTTP and real sockets. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { sqliteFile } from '../src/store/index.js';
import { account, api, connect, sleep, startTestServer, ticket, tryUpgrade, uniqueName, wsUrl, type TestServer } from '@parley/testing/helpers';

describe('accounts', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ loginMaxFailures: 3 });
  });
  after(() => server.stop());

  test('register: 201 with the user, then 409 when taken (case-insensitively)', async () => {
    const name = uniqueName('Reg');
    const r = await api(server.url, '/register', { username: name, password: 'password1' });
    assert.equal(r.status, 201);
    assert.deepEqual(r.body, { user: { name } });
    const again = await api(server.url, '/register', { username: name.toLowerCase(), password: 'password2' });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'username_taken');
  });

  test('register: 400 on malformed bodies, bad names and short passwords', async () => {
    const cases: [unknown, string, string?][] = [
      [{ username: 'ok_name', password: 'short' }, 'weak_password'],
      [{ username: '', password: 'password1' }, 'invalid_username'],
      [{ username: 'x'.repeat(33), password: 'password1' }, 'invalid_username'],
      [{ username: 'bad name', password: 'password1' }, 'invalid_username'],
      [{ username: 'bad<name>', password: 'password1' }, 'invalid_username'],
      [{ username: 'ok_name' }, 'bad_request'],
      [{ username: 42, password: 'password1' }, 'bad_request'],
      [['array'], 'bad_request'],
      [null, 'bad_request', 'not json {'],
      [null, 'bad_request', '"a string"'],
    ];
    for (const [body, code, raw] of cases) {
      const r = raw === undefined ? await api(server.url, '/register', body) : await api(server.url, '/register', undefined, { raw });
      assert.equal(r.status, 400, `${JSON.stringify(body ?? raw)} → ${r.status}`);
      assert.equal(r.body.error.code, code, JSON.stringify(body ?? raw));
      assert.equal(typeof r.body.error.message, 'string');
    }
    const exactly32 = await api(server.url, '/register', { username: `a${process.pid}`.padEnd(32, 'z'), password: '12345678' });
    assert.equal(exactly32.status, 201, 'a 32-character name and an 8-character password are fine');
  });

  test('register: 415 for a non-JSON content type, 413 for a huge body', async () => {
    const r = await api(server.url, '/register', undefined, { raw: 'username=a&password=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 415);
    assert.equal(r.body.error.code, 'unsupported_media_type');
    const big = await api(server.url, '/register', { username: 'big', password: 'x'.repeat(20_000) });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'payload_too_large');
  });

  test('passwords are stored only as scrypt hashes', async () => {
    const name = uniqueName('hash');
    await api(server.url, '/register', { username: name, password: 'plaintext-secret' });
    const db = new Database(sqliteFile(server.config), { readonly: true });
    try {
      const row = db.prepare('SELECT password_hash FROM users WHERE name = ?').get(name) as { password_hash: string };
      assert.match(row.password_hash, /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      assert.ok(!row.password_hash.includes('plaintext-secret'));
    } finally {
      db.close();
    }
  });

  test('login: 200 with token and otp; 401 on a wrong password or unknown user', async () => {
    const name = uniqueName('login');
    await api(server.url, '/register', { username: name, password: 'password1' });
    const ok = await api(server.url, '/login', { username: name.toUpperCase(), password: 'password1' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.user.name, name, 'the stored spelling of the name is returned');
    assert.match(ok.body.token, /^[A-Za-z0-9_-]{43}$/, 'token: 256 bits base64url');
    assert.match(ok.body.otp, /^[A-Za-z0-9_-]{43}$/, 'ticket: 256 bits base64url');
    const bad = await api(server.url, '/login', { username: name, password: 'password2' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error.code, 'invalid_credentials');
    const unknown = await api(server.url, '/login', { username: uniqueName('nobody'), password: 'password1' });
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.error.code, 'invalid_credentials');
    const malformed = await api(server.url, '/login', { username: name });
    assert.equal(malformed.status, 400);
  });

  test('login: 429 with Retry-After after repeated failures for one user name', async () => {
    const name = uniqueName('brute');
    await api(server.url, '/register', { username: name, password: 'password1' });
    for (let i = 0; i < 3; i++) assert.equal((await api(server.url, '/login', { username: name, password: 'wrong-pass' })).status, 401);
    const blocked = await api(server.url, '/login', { username: name, password: 'password1' });
    assert.equal(blocked.status, 429, 'even the right password is refused while blocked');
    assert.equal(blocked.body.error.code, 'too_many_attempts');
    const retry = Number(blocked.headers.get('retry-after'));
    assert.ok(retry > 0 && retry <= 15 * 60, `Retry-After ${retry}`);
    // Another user is not affected by this user's failures (the address limit is 4x).
    const other = await account(server);
    assert.ok(other.token.length > 0);
  });

  test('login: 429 after repeated failures from one address across user names', async () => {
    const s = await startTestServer({ loginMaxFailures: 2 });
    try {
      let last = 0;
      for (let i = 0; i < 8; i++) last = (await api(s.url, '/login', { username: uniqueName('spray'), password: 'whatever1' })).status;
      assert.equal(last, 401, '8 = 4 x 2 failures are still answered');
      const blocked = await api(s.url, '/login', { username: uniqueName('spray'), password: 'whatever1' });
      assert.equal(blocked.status, 429);
      assert.ok(Number(blocked.headers.get('retry-after')) > 0);
    } finally {
      await s.stop();
    }
  });

  test('ticket: a Bearer token mints a fresh otp; 401 without or with a bad token', async () => {
    const a = await account(server);
    const r = await api(server.url, '/ticket', undefined, { token: a.token });
    assert.equal(r.status, 200);
    assert.match(r.body.otp, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(r.body.otp, a.otp);
    const none = await api(server.url, '/ticket');
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'unauthorized');
    assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
    const bad = await api(server.url, '/ticket', undefined, { token: 'A'.repeat(43) });
    assert.equal(bad.status, 401);
    const wrongMethod = await api(server.url, '/ticket', undefined, { token: a.token, method: 'GET' });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.body.error.code, 'method_not_allowed');
  });

  test('logout revokes the token and closes its sockets with 4500', async () => {
    const a = await account(server);
    const client = await connect(server, a.otp);
    const spare = await ticket(server, a.token);
    const out = await api(server.url, '/logout', undefined, { token: a.token });
    assert.equal(out.status, 200);
    assert.equal((await client.waitClose()).code, 4500);
    assert.equal((await api(server.url, '/ticket', undefined, { token: a.token })).status, 401);
    assert.equal((await api(server.url, '/logout', undefined, { token: a.token })).status, 401);
    // A ticket minted before the logout no longer opens a socket.
    assert.equal((await tryUpgrade(wsUrl(server, spare))).status, 401);
  });

  test('tokens expire', async () => {
    const s = await startTestServer({ tokenTtlMs: 1000 });
    try {
      const a = await account(s);
      const otp = (await api<{ otp: string }>(s.url, '/ticket', undefined, { token: a.token })).body.otp;
      await sleep(1100);
      assert.equal((await api(s.url, '/ticket', undefined, { token: a.token })).status, 401);
      // A ticket never outlives the session it was minted from (tickets live 10 s by default).
      assert.equal((await tryUpgrade(wsUrl(s, otp))).status, 401);
    } finally {
      await s.stop();
    }
  });

  test('healthz, readyz, the page, and JSON 404s', async () => {
    const h = await api(server.url, '/healthz', undefined, { method: 'GET' });
    assert.equal(h.status, 200);
    assert.deepEqual(h.body, { status: 'ok' });
    assert.equal((await api(server.url, '/readyz', undefined, { method: 'GET' })).status, 200);
    const page = await fetch(server.url + '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /<title>Parley<\/title>/);
    const missing = await api(server.url, '/nope', undefined, { method: 'GET' });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
    const traversal = await api(server.url, '/..%2F..%2Fpackage.json', undefined, { method: 'GET' });
    assert.equal(traversal.status, 404);
    const plainWs = await api(server.url, '/ws', undefined, { method: 'GET' });
    assert.equal(plainWs.status, 400);
  });
});

describe('registration closed', () => {
  test('POST /register is 403 when registration is closed', async () => {
    const s = await startTestServer({ registration: 'closed' });
    try {
      const r = await api(s.url, '/register', { username: 'someone', password: 'password1' });
      assert.equal(r.status, 403);
      assert.equal(r.body.error.code, 'registration_closed');
    } finally {
      await s.stop();
    }
  });
});

describe('the upgrade guard', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ ticketTtlMs: 300, allowedOrigins: 'https://app.example.com' });
  });
  after(() => server.stop());

  test('401 without a ticket, with an unknown one, and with a used one', async () => {
    const missing = await tryUpgrade(`${server.url.replace('http', 'ws')}/ws`);
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.code, 'ticket_required');
    const unknown = await tryUpgrade(wsUrl(server, 'x'.repeat(43)));
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.error.code, 'ticket_invalid');

    const a = await account(server);
    const c = await connect(server, a.otp);
    const reused = await tryUpgrade(wsUrl(server, a.otp));
    assert.equal(reused.status, 401, 'a ticket is single use');
    assert.equal(reused.body.error.code, 'ticket_invalid');
    c.close();
  });

  test('401 with an expired ticket', async () => {
    const a = await account(server);
    await sleep(400);
    const r = await tryUpgrade(wsUrl(server, a.otp));
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'ticket_invalid');
  });

  test('a failed attempt with a bad origin still burns nothing: the ticket works from a good origin', async () => {
    const a = await account(server);
    const forbidden = await tryUpgrade(wsUrl(server, a.otp), { Origin: 'https://evil.example.net' });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.code, 'origin_forbidden');
    const ok = await tryUpgrade(wsUrl(server, a.otp), { Origin: 'https://app.example.com' });
    assert.equal(ok.status, 101, 'the origin is checked before the ticket is taken');
  });

  test('same origin and no origin are allowed; a look-alike is not', async () => {
    const a = await account(server);
    const host = new URL(server.url).host;
    assert.equal((await tryUpgrade(wsUrl(server, a.otp), { Origin: `http://${host}` })).status, 101);
    assert.equal((await tryUpgrade(wsUrl(server, await ticket(server, a.token)))).status, 101);
    assert.equal((await tryUpgrade(wsUrl(server, await ticket(server, a.token)), { Origin: `https://${host}` })).status, 403, 'scheme must match');
    assert.equal((await tryUpgrade(wsUrl(server, await ticket(server, a.token)), { Origin: `http://${host}.evil.net` })).status, 403);
    assert.equal((await tryUpgrade(wsUrl(server, await ticket(server, a.token)), { Origin: 'null' })).status, 403);
  });

  test('only /ws upgrades', async () => {
    const a = await account(server);
    const r = await tryUpgrade(`${server.url.replace('http', 'ws')}/other?otp=${a.otp}`);
    assert.equal(r.status, 404);
  });
});
