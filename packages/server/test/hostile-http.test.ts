/**
 * Hostile HTTP against the real `parley` process: malformed request lines, targets, headers and
 * methods, sent as raw bytes on real sockets to every route, upgrade and not. Every answer is a
 * 4xx with a JSON error, nothing is logged at error level, the process keeps running, and a chat
 * still works afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort, type RunningServer, startCli, tempDir } from '@parley/testing/cli';
import { api, connect, rawExchange, statusOf, user } from '@parley/testing/helpers';

const ROUTES = ['/', '/ws', '/login', '/register', '/ticket', '/logout', '/healthz', '/readyz', '/app.js', '/index.html'];
const UPGRADE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

/** Malformed targets for a route: absolute-form with bad ports and hosts, bad percent-encoding, overlong. */
const badTargets = (route: string): string[] => [
  `http://a:99999${route}`,
  `http://a:-1${route}`,
  `http://[${route}`,
  `http://%zz${route}`,
  `http://a b${route}`,
  `https://[::1${route}`,
  `${route}%`,
  `${route}%ff`,
  `${route}%E0%A4%A`,
  `${route}%zz`,
  `${route}%00`,
  `${route}/%2e%2e/%2e%2e/etc/passwd`,
  `${route}${'a'.repeat(20_000)}`,
  `${route}?${'q'.repeat(20_000)}`,
];

/** Whole requests (line + headers) that are malformed whatever the route. */
const badRequests = (route: string): string[] => [
  // Methods.
  `BREW ${route} HTTP/1.1\r\nHost: x\r\n\r\n`,
  `DELETE ${route} HTTP/1.1\r\nHost: x\r\n\r\n`,
  `PUT ${route} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`,
  `OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n`,
  `G\x00T ${route} HTTP/1.1\r\nHost: x\r\n\r\n`,
  `\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03`, // a TLS ClientHello on the plain port
  // Request lines.
  `GET ${route} HTTP/9.9\r\nHost: x\r\n\r\n`,
  `GET ${route}\r\nHost: x\r\n\r\n`,
  `GET ${route} HTTP/1.1 extra\r\nHost: x\r\n\r\n`,
  // Headers.
  `GET ${route} HTTP/1.1\r\n\r\n`, // no Host
  `GET ${route} HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n`,
  `POST ${route} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello`,
  `POST ${route} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  `POST ${route} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`,
  `POST ${route} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n`,
  `POST ${route} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n0\r\n\r\n`,
  `GET ${route} HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n`,
  `GET ${route} HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n`,
  `GET ${route} HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`,
  `GET ${route} HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: ${'v'.repeat(8)}`).join('\r\n')}\r\n\r\n`,
  // Upgrades gone wrong.
  `GET ${route}?otp=abc HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n`,
  `GET ${route}?otp=abc HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  `GET ${route}?otp=abc HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n`,
  `POST ${route}?otp=abc HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
  `GET ${route}?otp=%ff%fe&resume=%zz HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
  `GET ${route}?otp=${'o'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
  `GET ${route}?otp=abc HTTP/1.1\r\nHost: x\r\n${UPGRADE}Origin: http://evil.example\r\n\r\n`,
  `GET ${route}?otp=abc HTTP/1.1\r\nHost: x\r\n${UPGRADE}Origin: not a url\r\n\r\n`,
];

describe('hostile HTTP requests', () => {
  let srv: RunningServer;
  before(async () => {
    srv = await startCli(['--host', '127.0.0.1', '--port', String(await freePort()), '--data-dir', tempDir()]);
  });
  after(() => srv.stop());

  test('the requests that killed the server answer 400 bad_request, and it keeps serving', async () => {
    for (const target of ['http://a:99999/', 'http://[/ws', 'http://%zz/']) {
      for (const upgrade of [true, false]) {
        const answer = await rawExchange(srv.port, `GET ${target} HTTP/1.1\r\nHost: x\r\n${upgrade ? 'Connection: upgrade\r\nUpgrade: x\r\n' : 'Connection: close\r\n'}\r\n`);
        assert.equal(statusOf(answer), 400, `${target} (upgrade: ${upgrade}): ${answer.slice(0, 200)}`);
        assert.match(answer, /"code":"bad_request"/);
        assert.match(answer, /X-Content-Type-Options: nosniff/i);
      }
    }
    assert.equal(srv.proc.exitCode, null, 'the process is still running');
    assert.equal((await api(srv.url, '/healthz', undefined, { method: 'GET' })).status, 200);
  });

  test('an Upgrade other than websocket is ignored: the request is served as plain HTTP (curl --http2)', async () => {
    const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
    const health = await rawExchange(srv.port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`);
    assert.equal(statusOf(health), 200, health.slice(0, 200));
    assert.match(health, /\{"status":"ok"\}/);
    const body = JSON.stringify({ username: 'nobody_h2c', password: 'not the password' });
    const login = await rawExchange(srv.port, `POST /login HTTP/1.1\r\nHost: x\r\n${h2c}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    assert.equal(statusOf(login), 401, 'the body was read and the login evaluated');
    assert.match(login, /invalid_credentials/);
    const ws = await rawExchange(srv.port, `GET /ws HTTP/1.1\r\nHost: x\r\n${h2c}\r\n`);
    assert.equal(statusOf(ws), 400, '/ws still wants a WebSocket upgrade');
  });

  test('bad percent-encoding in a page path is a 400, not a 500, and is not logged as an error', async () => {
    for (const path of ['/%', '/%ff', '/%E0%A4%A', '/app.js%', '/%c0%af']) {
      const r = await fetch(srv.url + path);
      assert.ok(r.status === 400 || r.status === 404, `${path} → ${r.status}`);
      const body = (await r.json()) as { error: { code: string } };
      assert.ok(['bad_request', 'not_found'].includes(body.error.code), `${path}: ${body.error.code}`);
    }
    assert.deepEqual(
      srv.lines.filter((l) => l.level >= 50),
      [],
      'no error-level log line',
    );
  });

  test('a corpus of malformed targets, request lines, headers and methods on every route: every answer is a 4xx', async () => {
    let sent = 0;
    const failures: string[] = [];
    for (const route of ROUTES) {
      const requests = [
        ...badTargets(route).flatMap((t) => [
          `GET ${t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
          `POST ${t} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
          `GET ${t} HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`,
        ]),
        ...badRequests(route),
      ];
      for (const request of requests) {
        const answer = await rawExchange(srv.port, request);
        sent++;
        const status = statusOf(answer);
        if (status < 400 || status > 499) failures.push(`${JSON.stringify(request.slice(0, 120))} → ${status === 0 ? JSON.stringify(answer.slice(0, 80)) : status}`);
      }
    }
    assert.ok(sent > 400, `${sent} requests sent`);
    assert.deepEqual(failures, [], 'every malformed request is answered with a 4xx');
    assert.equal(srv.proc.exitCode, null, 'the process is still running');
    assert.deepEqual(
      srv.lines.filter((l) => l.level >= 50).map((l) => `${l.msg}: ${JSON.stringify(l.err).slice(0, 300)} ${String(l.url).slice(0, 60)}`),
      [],
      'nothing was logged at error level',
    );

    // And a chat still works.
    const alice = await user(srv);
    const bob = await user(srv);
    alice.client.send({ type: 'send_message', payload: { message: 'still here' }, ref: 'after-corpus' });
    assert.equal((await bob.client.next('new_message', (m) => m.message === 'still here')).from, alice.name);
    alice.client.close();
    bob.client.close();
    const again = await connect(srv, (await api<{ otp: string }>(srv.url, '/ticket', undefined, { token: alice.token })).body.otp);
    again.close();
  });
});
