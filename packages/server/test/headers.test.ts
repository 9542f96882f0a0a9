/**
 * What every response says about itself: nosniff everywhere, the page's policies, bodies that
 * must be JSON (415 otherwise), and a WebSocket handshake that negotiates no subprotocol.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { account, api, rawExchange, startTestServer, statusOf, ticket, type TestServer } from '@parley/testing/helpers';

describe('headers and content types', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test('every response carries X-Content-Type-Options: nosniff: JSON, errors, the page, refused upgrades', async () => {
    const a = await account(server);
    const responses = [
      await fetch(server.url + '/healthz'),
      await fetch(server.url + '/readyz'),
      await fetch(server.url + '/'),
      await fetch(server.url + '/app.js'),
      await fetch(server.url + '/nope'),
      await fetch(server.url + '/%ff'),
      await fetch(server.url + '/login', { method: 'GET' }),
      await fetch(server.url + '/ticket', { method: 'POST', headers: { authorization: `Bearer ${a.token}` } }),
      await fetch(server.url + '/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"username":"x","password":"wrong password"}' }),
    ];
    for (const r of responses) assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${r.url} ${r.status}`);
    const refused = await rawExchange(server.port, `GET /ws?otp=nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    assert.equal(statusOf(refused), 401);
    assert.match(refused, /\r\nX-Content-Type-Options: nosniff\r\n/i);
  });

  test('the page: a Content-Security-Policy without inline script, Referrer-Policy, and no framing', async () => {
    const page = await fetch(server.url + '/');
    const csp = page.headers.get('content-security-policy') ?? '';
    const scriptSrc = /script-src ([^;]+)/.exec(csp)?.[1] ?? /default-src ([^;]+)/.exec(csp)?.[1] ?? '';
    assert.ok(scriptSrc.includes("'self'"), csp);
    assert.ok(!scriptSrc.includes("'unsafe-inline'") && !scriptSrc.includes("'unsafe-eval'"), `no inline script: ${csp}`);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    const html = await page.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'the page itself has no inline <script>');
    assert.doesNotMatch(html, /\son[a-z]+=/i, 'nor inline event handlers');
  });

  test('a body without Content-Type: application/json is 415: missing, another type, or one that merely starts with it', async () => {
    const body = JSON.stringify({ username: 'ct_user', password: 'correct horse' });
    for (const type of [undefined, 'text/plain', 'application/jsonx', 'application/json-patch+json', 'application/x-www-form-urlencoded', 'json', '']) {
      for (const path of ['/register', '/login']) {
        const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
        const r = await fetch(server.url + path, { method: 'POST', headers, body: Buffer.from(body) });
        assert.equal(r.status, 415, `${path} with ${JSON.stringify(type)}`);
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'unsupported_media_type');
      }
    }
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON;charset=UTF-8']) {
      const r = await api(server.url, '/register', undefined, { raw: JSON.stringify({ username: `ct${type.length}${process.pid}`, password: 'correct horse' }), headers: { 'content-type': type } });
      assert.equal(r.status, 201, type);
    }
    // /ticket and /logout take no body; one of another type is refused, none at all is fine.
    const a = await account(server);
    const typed = await fetch(server.url + '/ticket', { method: 'POST', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'text/plain' }, body: 'hello' });
    assert.equal(typed.status, 415);
    assert.match(await ticket(server, a.token), /^[A-Za-z0-9_-]{43}$/);
  });

  test('the Authorization scheme is case-insensitive (RFC 9110): bearer, BEARER', async () => {
    const a = await account(server);
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const r = await fetch(server.url + '/ticket', { method: 'POST', headers: { authorization: `${scheme} ${a.token}` } });
      assert.equal(r.status, 200, scheme);
    }
  });

  test('no subprotocol is negotiated: one offered by the client is not echoed', async () => {
    const a = await account(server);
    const answer = await rawExchange(
      server.port,
      `GET /ws?otp=${a.otp} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, parley\r\n\r\n`,
      500,
    );
    assert.equal(statusOf(answer), 101);
    const head = answer.slice(0, answer.indexOf('\r\n\r\n'));
    assert.doesNotMatch(head, /sec-websocket-protocol/i, head);
    assert.match(head, /\r\nX-Content-Type-Options: nosniff/i, 'the 101 says nosniff too');
  });
});
