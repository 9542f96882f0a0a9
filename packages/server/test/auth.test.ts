/**
 * Authentication that holds under concurrency and hostility: login and sign-up throttles that
 * count before they check, delays instead of lock-outs, hashing that cannot starve logins,
 * tickets limited per session, names and passwords normalized. Clients come from several
 * 127.x addresses over real sockets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OwnRedis, waitFor } from '@parley/testing/cluster';
import { account, api, apiFrom, connect, sleep, startTestServer, type TestServer, uniqueName } from '@parley/testing/helpers';

const PASSWORD = 'correct horse';

describe('login throttle', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ loginMaxFailures: 5 });
  });
  after(() => server.stop());

  test('100 concurrent logins for one name, 99 wrong and the right one last: at most 5 guesses are evaluated', async () => {
    const name = uniqueName('race');
    await apiFrom('127.0.0.1', server.url, '/register', { username: name, password: PASSWORD });
    const attempts = Array.from({ length: 100 }, (_, i) => apiFrom('127.0.0.21', server.url, '/login', { username: name, password: i === 99 ? PASSWORD : `wrong ${i}` }));
    const results = await Promise.all(attempts);
    const evaluated = results.filter((r) => r.status !== 429);
    assert.ok(evaluated.length <= 5, `${evaluated.length} guesses were evaluated: ${evaluated.map((r) => r.status).join(',')}`);
    assert.ok(evaluated.every((r) => r.status === 401 || r.status === 200));
    for (const r of results.filter((r) => r.status === 429)) {
      assert.equal(r.body.error.code, 'too_many_attempts');
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
    }
    assert.equal(results.filter((r) => r.status === 200).length, results[99]?.status === 200 ? 1 : 0, 'only the right password can succeed');
  });

  test('100 concurrent logins for 100 names from one address: at most 4 × 5 are evaluated', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, () => apiFrom('127.0.0.22', server.url, '/login', { username: uniqueName('spray'), password: 'whatever1' })));
    const evaluated = results.filter((r) => r.status !== 429).length;
    assert.ok(evaluated <= 20, `${evaluated} evaluated`);
    assert.ok(evaluated >= 5, `the address's own allowance is used (${evaluated})`);
  });

  test('a guesser at one address cannot lock the owner out: the owner logs in from another address', async () => {
    const name = uniqueName('owner');
    await apiFrom('127.0.0.1', server.url, '/register', { username: name, password: PASSWORD });
    const guesses = await Promise.all(Array.from({ length: 30 }, (_, i) => apiFrom('127.0.0.23', server.url, '/login', { username: name, password: `guess ${i}` })));
    assert.ok(guesses.some((r) => r.status === 429), 'the guesser is slowed down');
    const atGuesser = await apiFrom('127.0.0.23', server.url, '/login', { username: name, password: PASSWORD });
    assert.equal(atGuesser.status, 429, 'from the guessing address even the right password must wait');
    const owner = await apiFrom('127.0.0.24', server.url, '/login', { username: name, password: PASSWORD });
    assert.equal(owner.status, 200, 'from elsewhere the owner logs in at once');
    assert.match(owner.body.token, /^[A-Za-z0-9_-]{43}$/);
  });

  test('after the Retry-After delay an attempt is evaluated again (a delay, not a lock), and a success clears it', async () => {
    const name = uniqueName('delay');
    await apiFrom('127.0.0.1', server.url, '/register', { username: name, password: PASSWORD });
    for (let i = 0; i < 5; i++) assert.equal((await apiFrom('127.0.0.25', server.url, '/login', { username: name, password: 'not it' })).status, 401);
    const held = await apiFrom('127.0.0.25', server.url, '/login', { username: name, password: PASSWORD });
    assert.equal(held.status, 429);
    const retryAfter = Number(held.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 2, `the first delay is short: ${retryAfter} s`);
    await sleep(retryAfter * 1000 + 100);
    const ok = await apiFrom('127.0.0.25', server.url, '/login', { username: name, password: PASSWORD });
    assert.equal(ok.status, 200, 'evaluated again once the delay passed');
    // The success cleared this name + address: a fresh allowance.
    for (let i = 0; i < 4; i++) assert.equal((await apiFrom('127.0.0.25', server.url, '/login', { username: name, password: 'not it' })).status, 401, `fresh attempt ${i}`);
  });
});

describe('sign-ups', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ registerMaxPerAddress: 5 });
  });
  after(() => server.stop());

  test('throttled per address: 5 go ahead, then 429 with Retry-After; another address is not affected', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, () => apiFrom('127.0.0.31', server.url, '/register', { username: uniqueName('many'), password: PASSWORD })));
    assert.equal(results.filter((r) => r.status === 201).length, 5);
    const refused = results.filter((r) => r.status === 429);
    assert.equal(refused.length, 7);
    assert.ok(refused.every((r) => r.body.error.code === 'too_many_attempts' && Number(r.headers.get('retry-after')) >= 1));
    assert.equal((await apiFrom('127.0.0.32', server.url, '/register', { username: uniqueName('elsewhere'), password: PASSWORD })).status, 201);
  });

  test('a taken name is refused before any hashing', async () => {
    const name = uniqueName('taken');
    assert.equal((await apiFrom('127.0.0.33', server.url, '/register', { username: name, password: PASSWORD })).status, 201);
    const before = server.hashes.hashes;
    const again = await Promise.all(Array.from({ length: 4 }, (_, i) => apiFrom(`127.0.0.${34 + i}`, server.url, '/register', { username: name.toUpperCase(), password: PASSWORD })));
    assert.deepEqual(
      again.map((r) => r.status),
      [409, 409, 409, 409],
    );
    assert.equal(server.hashes.hashes, before, 'no password was hashed for a taken name');
  });
});

describe('hashing does not starve logins', () => {
  test('40 concurrent sign-ups from 40 addresses: a login sent while they wait is answered before most of them', async () => {
    const server = await startTestServer();
    try {
      const existing = await account(server);
      const done: string[] = [];
      const signups = Array.from({ length: 40 }, (_, i) =>
        apiFrom(`127.0.1.${i + 1}`, server.url, '/register', { username: uniqueName('burst'), password: PASSWORD }).then((r) => {
          assert.equal(r.status, 201);
          done.push('signup');
        }),
      );
      // Wait until the sign-ups are queued for hashing, then log in.
      for (let i = 0; i < 500 && server.hashes.queued < 30; i++) await sleep(5);
      assert.ok(server.hashes.queued >= 30, `sign-ups are waiting for the hash pool (${server.hashes.queued})`);
      const login = api(server.url, '/login', { username: existing.name, password: existing.password }).then((r) => {
        assert.equal(r.status, 200);
        done.push('login');
      });
      await Promise.all([...signups, login]);
      const position = done.indexOf('login');
      assert.ok(position < 10, `the login was answered after ${position} of 40 sign-ups`);
    } finally {
      await server.stop();
    }
  });
});

describe('tickets', () => {
  test('a session mints at most ticketRateLimitPerMin tickets a minute; then 429 rate_limited; other sessions are not affected', async () => {
    const server = await startTestServer({ ticketRateLimitPerMin: 5 });
    try {
      const a = await account(server);
      const b = await account(server);
      // Limits count per minute of the clock: start well inside one.
      const left = 60_000 - (Date.now() % 60_000);
      if (left < 5000) await sleep(left + 100);
      const results = await Promise.all(Array.from({ length: 8 }, () => api(server.url, '/ticket', undefined, { token: a.token })));
      assert.equal(results.filter((r) => r.status === 200).length, 5);
      const refused = results.filter((r) => r.status === 429);
      assert.equal(refused.length, 3);
      for (const r of refused) {
        assert.equal(r.body.error.code, 'rate_limited');
        const retry = Number(r.headers.get('retry-after'));
        assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
      }
      assert.equal((await api(server.url, '/ticket', undefined, { token: b.token })).status, 200, 'another session still gets tickets');
    } finally {
      await server.stop();
    }
  });
});

describe('names and passwords are normalized', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test('a fullwidth user name (NFKC) is the same account, in any case', async () => {
    const name = `nfkc${process.pid % 10000}`;
    assert.equal((await api(server.url, '/register', { username: name, password: PASSWORD })).status, 201);
    const fullwidth = [...name.toUpperCase()].map((c) => String.fromCodePoint((c.codePointAt(0) as number) + 0xfee0)).join('');
    const taken = await api(server.url, '/register', { username: fullwidth, password: PASSWORD });
    assert.equal(taken.status, 409, `${fullwidth} is ${name}`);
    const login = await api(server.url, '/login', { username: fullwidth, password: PASSWORD });
    assert.equal(login.status, 200);
    assert.equal(login.body.user.name, name, 'reported as registered');
    assert.equal((await api(server.url, '/register', { username: 'ａ b', password: PASSWORD })).status, 400, 'a name still has to fit the pattern after NFKC');
  });

  test('a password is NFC: precomposed and combining spellings are one password; a lone surrogate is refused', async () => {
    const name = uniqueName('nfc');
    const composed = 'caf\u00e9 au lait';
    const decomposed = 'cafe\u0301 au lait';
    assert.equal((await api(server.url, '/register', { username: name, password: decomposed })).status, 201);
    assert.equal((await api(server.url, '/login', { username: name, password: composed })).status, 200);
    assert.equal((await api(server.url, '/login', { username: name, password: decomposed })).status, 200);
    const bad = await api(server.url, '/register', { username: uniqueName('sur'), password: 'lone \ud800 surrogate' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'bad_request');
  });
});

describe('behind a proxy (trustProxy)', () => {
  test('the address is the last X-Forwarded-For entry: entries a client puts before it do not dodge the throttle', async () => {
    const server = await startTestServer({ trustProxy: true, loginMaxFailures: 3 });
    try {
      const name = uniqueName('xff');
      await api(server.url, '/register', { username: name, password: PASSWORD });
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        // What nginx's $proxy_add_x_forwarded_for sends: the client's own header, then the address it saw.
        const r = await api(server.url, '/login', { username: name, password: `wrong ${i}` }, { headers: { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.7` } });
        statuses.push(r.status);
      }
      assert.deepEqual(statuses.slice(0, 3), [401, 401, 401]);
      assert.ok(statuses.slice(3).every((s) => s === 429), `spoofed first entries do not help: ${statuses.join(',')}`);
      const other = await api(server.url, '/login', { username: name, password: PASSWORD }, { headers: { 'x-forwarded-for': '203.0.113.8' } });
      assert.equal(other.status, 200, 'another real address is not affected');
    } finally {
      await server.stop();
    }
  });
});

describe('Redis down', () => {
  test('logins, sign-ups and tickets answer 503 at once; connected clients keep chatting (the message limit fails open)', async () => {
    const redis = await OwnRedis.start();
    const server = await startTestServer({ redisUrl: redis.url, redisPrefix: `parley-test:${process.pid}:down:` });
    try {
      const a = await account(server);
      const b = await account(server);
      const ca = await connect(server, a.otp);
      const cb = await connect(server, b.otp);
      await redis.kill();
      const login = await api(server.url, '/login', { username: a.name, password: a.password });
      assert.equal(login.status, 503);
      assert.equal(login.body.error.code, 'unavailable');
      assert.equal((await api(server.url, '/ticket', undefined, { token: a.token })).status, 503);
      assert.equal((await api(server.url, '/register', { username: uniqueName('down'), password: PASSWORD })).status, 503);
      ca.send({ type: 'send_message', payload: { message: 'redis is down' }, ref: 'down-1' });
      assert.ok((await ca.next('ack', (p) => p.ref === 'down-1', 5000)).seq > 0);
      await cb.next('new_message', (m) => m.message === 'redis is down', 5000);
      await redis.start();
      await waitFor(async () => (await api(server.url, '/ticket', undefined, { token: a.token })).status === 200, 'tickets again once Redis is back', 15_000);
      ca.close();
      cb.close();
    } finally {
      await server.stop();
      await redis.stop();
    }
  });
});
