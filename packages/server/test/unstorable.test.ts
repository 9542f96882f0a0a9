/**
 * Values no store can keep (U+0000, lone surrogates) are refused at the door with a precise code,
 * identically on SQLite and Postgres, and never fail anyone else's message; whatever is accepted
 * is broadcast exactly as history returns it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, storeDrivers, type TestServer, user, chat } from '@parley/testing/helpers';

const FAST = { rateLimitPerSec: 1000, rateLimitBurst: 1000, userRateLimitPerSec: 0 };

for (const driver of storeDrivers()) {
  describe(`unstorable values (${driver.name})`, () => {
    let server: TestServer;
    let cleanup: () => Promise<void>;
    before(async () => {
      const d = await driver.overrides();
      cleanup = d.cleanup;
      server = await startTestServer({ ...FAST, ...d.o });
    });
    after(async () => {
      await server.stop();
      await cleanup();
    });

    test('NUL and lone surrogates in a message are invalid_payload; in a ref, bad_event', async () => {
      const a = await user(server);
      for (const [i, message] of ['nul\u0000here', '\u0000', 'x\ud800y', 'x\udc00y', 'ends\ud83d', '\ude00starts'].entries()) {
        a.client.send({ type: 'send_message', payload: { message }, ref: `bad${i}` });
        const err = await a.client.next('error', (e) => e.ref === `bad${i}`);
        assert.equal(err.code, 'invalid_payload', JSON.stringify(message));
        assert.match(err.message, /message/);
      }
      for (const ref of ['r\u0000', 'r\ud800']) {
        a.client.send({ type: 'send_message', payload: { message: 'fine' }, ref });
        const err = await a.client.next('error', (e) => e.code === 'bad_event');
        assert.match(err.message, /ref/);
      }
      assert.equal(a.client.all('new_message').filter((m) => m.message !== undefined && m.from === a.name).length, 0, 'nothing was stored or broadcast');
      a.client.close();
    });

    test('what is broadcast is exactly what history returns, for every other kind of text', async () => {
      const a = await user(server);
      const b = await user(server);
      const texts = ['plain', 'emoji 😀👍🏽 and a flag 🇫🇷', 'controls \u0001\u001f\u007f\t\r\n', 'BOM \ufeff nonchars \ufffe\uffff', 'combining é vs é', 'RTL \u202e override', '"quotes" \\ backslash </script>', 'astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{10ffff}'];
      for (const [i, message] of texts.entries()) a.client.send({ type: 'send_message', payload: { message }, ref: `t${i}` });
      const live = [];
      for (let i = 0; i < texts.length; i++) live.push(await b.client.next('new_message', (m) => m.from === a.name));
      assert.deepEqual(
        live.map((m) => m.message),
        texts,
        'broadcast as sent',
      );
      b.client.send({ type: 'history', payload: { room: 'general', limit: texts.length }, ref: 'h' });
      const history = (await b.client.next('history')).messages.reverse();
      assert.deepEqual(
        chat(history).map((m) => m.message),
        texts,
        'history returns the same text',
      );
      assert.deepEqual(
        chat(history).map((m) => Buffer.from(JSON.stringify(m.message))),
        live.map((m) => Buffer.from(JSON.stringify(m.message))),
        'byte for byte',
      );
      a.client.close();
      b.client.close();
    });

    test("one user's unstorable messages, sent as fast as the limits allow, never fail another user's", async () => {
      const attacker = await user(server);
      const others = await Promise.all([user(server), user(server), user(server)]);
      const rounds = 20;
      for (let r = 0; r < rounds; r++) {
        // In the same turn: the attacker's bad messages and everyone else's good ones.
        for (let k = 0; k < 3; k++) attacker.client.send({ type: 'send_message', payload: { message: `evil\u0000${r}.${k}` }, ref: `e${r}.${k}` });
        for (const [i, o] of others.entries()) o.client.send({ type: 'send_message', payload: { message: `good ${r}.${i}` }, ref: `g${r}.${i}` });
      }
      for (const [i, o] of others.entries()) {
        for (let r = 0; r < rounds; r++) {
          const ack = await o.client.next('ack', (p) => p.ref === `g${r}.${i}`);
          assert.ok(ack.seq > 0);
        }
        assert.deepEqual(o.client.all('error'), [], `user ${i} got no error`);
      }
      const errors = attacker.client.all('error');
      assert.equal(errors.length, rounds * 3);
      assert.ok(errors.every((e) => e.code === 'invalid_payload'), 'the attacker is told why, with a code that says retrying will not help');
      for (const c of [attacker, ...others]) c.client.close();
    });
  });
}
