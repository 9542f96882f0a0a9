/**
 * `parley user remove` against a running server, on SQLite and on Postgres: the removed user's
 * sockets close with 4501 (terminal), their unused tickets and tokens stop working at once, and
 * the name stays reserved, so no new account ever shows as the author of the old messages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloseCodes } from '@parley/protocol';
import { runCli } from '@parley/testing/cli';
import { api, connect, startTestServer, storeDrivers, ticket, tryUpgrade, type TestServer, uniqueName, user, wsUrl, chat } from '@parley/testing/helpers';

for (const driver of storeDrivers()) {
  describe(`removing an account from a running server (${driver.name})`, () => {
    let server: TestServer;
    let cleanup: () => Promise<void>;
    let cliArgs: string[];
    before(async () => {
      const d = await driver.overrides();
      cleanup = d.cleanup;
      server = await startTestServer(d.o);
      const o = d.o as Record<string, string>;
      cliArgs = o.store === 'postgres' ? ['--store', 'postgres', '--postgres-url', o.postgresUrl as string, '--postgres-schema', o.postgresSchema as string] : ['--data-dir', o.dataDir as string];
    });
    after(async () => {
      await server.stop();
      await cleanup();
    });

    test('its sockets close with 4501, its tickets and token are void, its name stays reserved, its messages stay its own', async () => {
      const name = uniqueName('gone');
      const alice = await user(server, name);
      const second = await connect(server, await ticket(server, alice.token));
      const spare = await ticket(server, alice.token);
      const bob = await user(server);
      alice.client.send({ type: 'send_message', payload: { message: 'before removal' }, ref: 'rm-1' });
      const { seq } = await alice.client.next('ack');

      const rm = await runCli(['user', 'remove', name.toUpperCase(), ...cliArgs]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.match(rm.stdout, new RegExp(`removed user ${name}`));

      for (const c of [alice.client, second]) {
        const closed = await c.waitClose(5000);
        assert.equal(closed.code, CloseCodes.user_removed);
      }
      assert.equal((await bob.client.next('user_left', (p) => p.user === name)).room, 'general');
      const upgrade = await tryUpgrade(wsUrl(server, spare));
      assert.equal(upgrade.status, 401, 'an unused ticket no longer opens a socket');
      assert.equal(upgrade.body.error.code, 'ticket_invalid');
      assert.equal((await api(server.url, '/ticket', undefined, { token: alice.token })).status, 401, 'the token mints nothing');
      assert.equal((await api(server.url, '/login', { username: name, password: alice.password })).status, 401, 'nor can it log in');

      // The name is reserved: neither a sign-up nor the operator can take it again.
      const again = await api(server.url, '/register', { username: name, password: 'another password' });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'username_taken');
      const add = await runCli(['user', 'add', name, ...cliArgs], { env: { PARLEY_USER_PASSWORD: 'another password' } });
      assert.equal(add.code, 2);
      assert.match(add.stderr, /exists already|reserved/);
      const list = await runCli(['user', 'list', '--json', ...cliArgs]);
      assert.ok(!(JSON.parse(list.stdout) as { name: string }[]).some((u) => u.name === name), 'a removed account is not listed');

      // What it wrote stays, under its name, and nobody else's.
      bob.client.send({ type: 'history', payload: { room: 'general', limit: 100 }, ref: 'h' });
      const history = (await bob.client.next('history')).messages;
      assert.equal(chat(history).find((m) => m.seq === seq)?.from, name);
      bob.client.close();
    });

    test('removing an unknown or already removed account fails, naming it', async () => {
      const rm = await runCli(['user', 'remove', 'nobody_here', ...cliArgs]);
      assert.equal(rm.code, 2);
      assert.match(rm.stderr, /no user nobody_here/);
    });
  });
}
