/**
 * Rooms with members (issue 16), end to end over real sockets: isolation of private and direct
 * rooms, invitations, kicks, bans, mutes and roles, memberships that outlive connections and
 * restarts, the room directory, and the migration of a database written before rooms had members.
 * The same scenarios run on one SQLite node and on two nodes sharing Postgres and Redis (each
 * user's connections spread over both nodes).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ClientFrame, isRoomEvent, type MembersPage, type Ref, type RoomsPage, type ServerEvents, type ServerFrame } from '@parley/protocol';
import { runCli } from '@parley/testing/cli';
import { Cluster, OwnRedis } from '@parley/testing/cluster';
import { type Account, account as accountOnce, api, chat, sleep, startTestServer, TestClient, ticket, uniqueName, wsUrl, type TestServer } from '@parley/testing/helpers';

interface Site {
  url: string;
}

/**
 * An account (see helpers.account), tried again after a 429 sign-up throttle: the two-node
 * scenario was seen refused at its 57th sign-up in CI though its nodes allow 100,000 per address
 * (not understood yet; noted in the issue). Bounded: three tries.
 */
async function account(site: Site): Promise<Account> {
  for (let i = 0; ; i++) {
    try {
      return await accountOnce(site);
    } catch (err) {
      if (i >= 2 || !String(err).includes(' 429 ')) throw err;
      await sleep(1500);
    }
  }
}

/** A connection of `acct` on `site` (a new tab), welcomed; its welcome is returned with it. */
async function tab(site: Site, acct: Account, resume = false): Promise<{ c: TestClient; welcome: ServerEvents['welcome'] }> {
  const otp = await ticket(site, acct.token);
  const c = new TestClient(wsUrl(site, otp) + (resume ? '&resume=1' : ''));
  await c.opened;
  const welcome = await c.next('welcome');
  for (const m of resume ? [] : welcome.rooms) await c.next('joined', (p) => p.room === m.room, 10_000);
  return { c, welcome };
}

let refs = 0;
/** Sends a client event with a fresh ref and resolves with the frame answering it (by ref). */
async function ask(c: TestClient, frame: Omit<ClientFrame, 'ref'>, timeoutMs = 10_000): Promise<ServerFrame> {
  const ref: Ref = `q${++refs}`;
  c.send({ ...frame, ref });
  const end = Date.now() + timeoutMs;
  for (;;) {
    const i = c.frames.findIndex((f) => f.ref === ref);
    if (i >= 0) return c.frames.splice(i, 1)[0] as ServerFrame;
    if (Date.now() > end) throw new Error(`no answer to ${JSON.stringify(frame)}; frames: ${JSON.stringify(c.frames.slice(-5))}`);
    await sleep(5);
  }
}

/** The error code answering `frame` ('ok' when it was not an error). */
async function codeOf(c: TestClient, frame: Omit<ClientFrame, 'ref'>): Promise<string> {
  const f = await ask(c, frame);
  return f.type === 'error' ? f.payload.code : 'ok';
}

/** The error answering `frame`, without its ref and room (what must not tell two rooms apart). */
async function refusal(c: TestClient, frame: Omit<ClientFrame, 'ref'>): Promise<{ code: string; message: string }> {
  const f = await ask(c, frame);
  assert.equal(f.type, 'error', `${JSON.stringify(frame)} answered ${JSON.stringify(f)}`);
  return f.type === 'error' ? { code: f.payload.code, message: f.payload.message } : { code: 'none', message: '' };
}

const frameIn = (c: TestClient, room: string): ServerFrame[] => c.frames.filter((f) => typeof f.payload === 'object' && f.payload !== null && 'room' in f.payload && f.payload.room === room);

/** The scenarios, on `sites` (two entries: the same node twice, or two nodes). */
function scenarios(label: string, setup: () => Promise<{ sites: [Site, Site]; stop: () => Promise<void> }>): void {
  describe(`rooms with members: ${label}`, () => {
    let A: Site;
    let B: Site;
    let stop: () => Promise<void>;
    before(async () => {
      const s = await setup();
      [A, B] = s.sites;
      stop = s.stop;
    });
    after(async () => stop());

    test('a private room tells a non-member nothing, and answers as a room that does not exist', async () => {
      const owner = await account(A);
      const outsider = await account(B);
      const o = (await tab(A, owner)).c;
      const x = (await tab(B, outsider)).c;
      const room = uniqueName('priv').toLowerCase();
      const none = uniqueName('none').toLowerCase();
      assert.equal((await ask(o, { type: 'create_room', payload: { room, visibility: 'private', title: 'Secret plans' } })).type, 'room_created');
      assert.equal((await ask(o, { type: 'send_message', payload: { room, message: 'the secret' } })).type, 'ack');
      // Every way in is refused, with the same answer as for a name no room has.
      const probes = (r: string): Omit<ClientFrame, 'ref'>[] => [
        { type: 'history', payload: { room: r } },
        { type: 'send_message', payload: { room: r, message: 'let me in' } },
        { type: 'typing', payload: { room: r } },
        { type: 'leave', payload: { room: r } },
        { type: 'invite', payload: { room: r, user: outsider.name } },
        { type: 'kick', payload: { room: r, user: owner.name } },
        { type: 'ban', payload: { room: r, user: owner.name } },
        { type: 'mute', payload: { room: r, user: owner.name } },
        { type: 'set_role', payload: { room: r, user: outsider.name, role: 'owner' } },
      ];
      for (const [i, probe] of probes(room).entries()) {
        const private_ = await refusal(x, probe);
        const nowhere = await refusal(x, probes(none)[i] ?? probe);
        assert.equal(private_.code, 'forbidden', JSON.stringify(probe));
        assert.deepEqual(private_, nowhere, `${probe.type}: a private room and no room answer alike`);
      }
      assert.equal(await codeOf(x, { type: 'join', payload: { room } }), 'forbidden');
      const resumed = await ask(x, { type: 'resume', payload: { rooms: { [room]: 0 } } });
      assert.ok(resumed.type === 'error' && resumed.payload.code === 'forbidden' && resumed.payload.room === room, JSON.stringify(resumed));
      // Over HTTP too: not listed, no member list (the same 403 as for no room).
      const listed = await api<RoomsPage>(B.url, `/rooms?q=${room}`, undefined, { token: outsider.token, method: 'GET' });
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body.rooms, []);
      const members = await api(B.url, `/rooms/${room}/members`, undefined, { token: outsider.token, method: 'GET' });
      const noMembers = await api(B.url, `/rooms/${none}/members`, undefined, { token: outsider.token, method: 'GET' });
      assert.equal(members.status, 403);
      assert.deepEqual(members.body, noMembers.body);
      assert.equal((await api<MembersPage>(A.url, `/rooms/${room}/members`, undefined, { token: owner.token, method: 'GET' })).body.members.length, 1);
      // Live traffic of the room never reaches the outsider.
      o.send({ type: 'typing', payload: { room } });
      assert.equal((await ask(o, { type: 'send_message', payload: { room, message: 'still secret' } })).type, 'ack');
      const probe = await ask(x, { type: 'history', payload: { room: 'general' } }); // a round trip after the room's traffic
      assert.equal(probe.type, 'history');
      await sleep(200);
      assert.deepEqual(frameIn(x, room).filter((f) => f.type !== 'error'), [], 'nothing of the room reached the outsider');
      o.close();
      x.close();
    });

    test('invite: the invitee\'s open connections on every node follow at once and see the history', async () => {
      const owner = await account(A);
      const guest = await account(B);
      const o = (await tab(A, owner)).c;
      const g1 = (await tab(A, guest)).c;
      const g2 = (await tab(B, guest)).c;
      const room = uniqueName('inv').toLowerCase();
      await ask(o, { type: 'create_room', payload: { room, visibility: 'private' } });
      await ask(o, { type: 'send_message', payload: { room, message: 'before the invite' } });
      const acked = await ask(o, { type: 'invite', payload: { room, user: guest.name.toUpperCase() } });
      assert.equal(acked.type, 'ack');
      for (const g of [g1, g2]) {
        const inv = await g.next('invited', (p) => p.room === room, 10_000);
        assert.equal(inv.by, owner.name);
        assert.equal(inv.visibility, 'private');
        assert.equal(inv.role, 'member');
        await g.next('joined', (p) => p.room === room, 10_000);
        const h = await ask(g, { type: 'history', payload: { room } });
        assert.ok(h.type === 'history');
        if (h.type === 'history') assert.deepEqual(chat(h.payload.messages).map((m) => m.message), ['before the invite']);
      }
      await ask(o, { type: 'send_message', payload: { room, message: 'after the invite' } });
      for (const g of [g1, g2]) assert.equal((await g.next('new_message', (p) => p.room === room, 10_000)).message, 'after the invite');
      const joined = await o.next('member_joined', (p) => p.room === room, 10_000);
      assert.equal(joined.user, guest.name);
      assert.equal(joined.by, owner.name);
      for (const c of [o, g1, g2]) c.close();
    });

    test('kick: the kicked user\'s sockets on every node stop receiving the room at once; they cannot come back to a private room', async () => {
      const owner = await account(A);
      const bob = await account(B);
      const witness = await account(B);
      const o = (await tab(A, owner)).c;
      const room = uniqueName('kick').toLowerCase();
      await ask(o, { type: 'create_room', payload: { room, visibility: 'private' } });
      for (const u of [bob, witness]) await ask(o, { type: 'invite', payload: { room, user: u.name } });
      const b1 = (await tab(A, bob)).c;
      const b2 = (await tab(B, bob)).c;
      const w = (await tab(B, witness)).c;
      const kicked = await ask(o, { type: 'kick', payload: { room, user: bob.name, reason: 'off topic' } });
      assert.equal(kicked.type, 'ack');
      const at = Date.now();
      await ask(o, { type: 'send_message', payload: { room, message: 'after the kick' } });
      for (const b of [b1, b2]) {
        const r = await b.next('removed', (p) => p.room === room, 10_000);
        console.log(`# removed reached a socket ${Date.now() - at} ms after the kick's ack`);
        assert.deepEqual({ by: r.by, reason: r.reason, ban: r.ban }, { by: owner.name, reason: 'off topic', ban: false });
      }
      const left = await w.next('member_left', (p) => p.room === room && p.user === bob.name, 10_000);
      assert.equal(left.by, owner.name);
      assert.equal((await w.next('new_message', (p) => p.room === room, 10_000)).message, 'after the kick');
      await ask(b2, { type: 'history', payload: { room: 'general' } }); // a round trip behind the message
      for (const b of [b1, b2]) assert.deepEqual(b.all('new_message').filter((m) => m.room === room), [], 'nothing after the kick');
      assert.equal(await codeOf(b1, { type: 'send_message', payload: { room, message: 'hello?' } }), 'forbidden');
      assert.equal(await codeOf(b2, { type: 'join', payload: { room } }), 'forbidden');
      assert.equal(await codeOf(b2, { type: 'history', payload: { room } }), 'forbidden');
      for (const c of [o, b1, b2, w]) c.close();
    });

    test('ban: a banned user cannot join again until unbanned; kick of a public room allows a rejoin', async () => {
      const owner = await account(A);
      const troll = await account(B);
      const o = (await tab(A, owner)).c;
      const room = uniqueName('ban').toLowerCase();
      await ask(o, { type: 'create_room', payload: { room, visibility: 'public' } });
      const t = (await tab(B, troll)).c;
      assert.equal(await codeOf(t, { type: 'join', payload: { room } }), 'ok');
      assert.equal(await codeOf(o, { type: 'kick', payload: { room, user: troll.name } }), 'ok');
      await t.next('removed', (p) => p.room === room, 10_000);
      assert.equal(await codeOf(t, { type: 'join', payload: { room } }), 'ok', 'a kick is not a ban');
      assert.equal(await codeOf(o, { type: 'ban', payload: { room, user: troll.name, reason: 'spam' } }), 'ok');
      const removed = await t.next('removed', (p) => p.room === room, 10_000);
      assert.equal(removed.ban, true);
      assert.equal(removed.reason, 'spam');
      assert.equal(await codeOf(t, { type: 'join', payload: { room } }), 'banned');
      const t2 = (await tab(A, troll)).c;
      assert.equal(await codeOf(t2, { type: 'resume', payload: { rooms: { [room]: 0 } } }), 'banned');
      assert.equal(await codeOf(o, { type: 'unban', payload: { room, user: troll.name } }), 'ok');
      assert.equal(await codeOf(t, { type: 'join', payload: { room } }), 'ok');
      for (const c of [o, t, t2]) c.close();
    });

    test('mute: sends are refused until unmute, or until the mute ends', async () => {
      const owner = await account(A);
      const quiet = await account(B);
      const o = (await tab(A, owner)).c;
      const room = uniqueName('mute').toLowerCase();
      await ask(o, { type: 'create_room', payload: { room, visibility: 'public' } });
      const q1 = (await tab(B, quiet)).c;
      const q2 = (await tab(A, quiet)).c;
      for (const q of [q1, q2]) assert.equal(await codeOf(q, { type: 'join', payload: { room } }), 'ok');
      assert.equal(await codeOf(o, { type: 'mute', payload: { room, user: quiet.name } }), 'ok');
      for (const q of [q1, q2]) {
        await q.next('muted', (p) => p.room === room && p.user === quiet.name, 10_000);
        assert.equal(await codeOf(q, { type: 'send_message', payload: { room, message: 'shh' } }), 'muted');
      }
      // A new tab reads the mute from the store.
      const q3 = await tab(B, quiet);
      assert.deepEqual(q3.welcome.rooms.find((m) => m.room === room)?.muted, {});
      assert.equal(await codeOf(q3.c, { type: 'send_message', payload: { room, message: 'shh' } }), 'muted');
      assert.equal(await codeOf(o, { type: 'unmute', payload: { room, user: quiet.name } }), 'ok');
      for (const q of [q1, q2]) await q.next('unmuted', (p) => p.room === room, 10_000);
      for (const q of [q1, q2, q3.c]) assert.equal(await codeOf(q, { type: 'send_message', payload: { room, message: 'back' } }), 'ok');
      // A timed mute ends by itself.
      const mute = await ask(o, { type: 'mute', payload: { room, user: quiet.name, durationMs: 1500 } });
      assert.equal(mute.type, 'ack');
      const muted = await q1.next('muted', (p) => p.room === room && p.until !== undefined, 10_000);
      const until = Date.parse(muted.until ?? '');
      assert.ok(until > Date.now() - 60_000 && until < Date.now() + 60_000);
      const first = await codeOf(q1, { type: 'send_message', payload: { room, message: 'too soon' } });
      if (first === 'ok') assert.ok(Date.now() >= until, 'a send within the mute was accepted');
      else assert.equal(first, 'muted');
      await sleep(Math.max(0, until - Date.now()) + 50);
      assert.equal(await codeOf(q1, { type: 'send_message', payload: { room, message: 'on time' } }), 'ok');
      for (const c of [o, q1, q2, q3.c]) c.close();
    });

    test('roles: nobody acts on a higher rank, owners set roles, the last owner hands over before leaving', async () => {
      const [own, mod, mem, other] = await Promise.all([account(A), account(B), account(A), account(B)]);
      const o = (await tab(A, own)).c;
      const room = uniqueName('roles').toLowerCase();
      await ask(o, { type: 'create_room', payload: { room, visibility: 'private' } });
      for (const u of [mod, mem, other]) assert.equal(await codeOf(o, { type: 'invite', payload: { room, user: u.name } }), 'ok');
      const m = (await tab(B, mod)).c;
      const n = (await tab(A, mem)).c;
      assert.equal(await codeOf(n, { type: 'kick', payload: { room, user: other.name } }), 'forbidden', 'a member moderates nobody');
      assert.equal(await codeOf(m, { type: 'set_role', payload: { room, user: mod.name, role: 'owner' } }), 'forbidden', 'only owners set roles');
      assert.equal(await codeOf(o, { type: 'set_role', payload: { room, user: mod.name, role: 'moderator' } }), 'ok');
      const changed = await m.next('role_changed', (p) => p.room === room && p.user === mod.name, 10_000);
      assert.equal(changed.role, 'moderator');
      assert.equal(await codeOf(m, { type: 'kick', payload: { room, user: own.name } }), 'forbidden', 'a moderator cannot kick an owner');
      assert.equal(await codeOf(m, { type: 'mute', payload: { room, user: own.name } }), 'forbidden');
      assert.equal(await codeOf(m, { type: 'invite', payload: { room, user: uniqueName('nobody') } }), 'unknown_user');
      assert.equal(await codeOf(m, { type: 'kick', payload: { room, user: mem.name } }), 'ok', 'a moderator kicks a member');
      assert.equal(await codeOf(o, { type: 'leave', payload: { room } }), 'forbidden', 'the last owner stays');
      assert.equal(await codeOf(o, { type: 'set_role', payload: { room, user: other.name, role: 'owner' } }), 'ok');
      assert.equal(await codeOf(o, { type: 'leave', payload: { room } }), 'ok');
      for (const c of [o, m, n]) c.close();
    });

    test('direct rooms: one room per pair, the same name either way; nobody else enters', async () => {
      const [alice, bob, carol] = await Promise.all([account(A), account(B), account(A)]);
      const a = (await tab(A, alice)).c;
      const b = (await tab(B, bob)).c;
      const opened = await ask(a, { type: 'open_direct', payload: { user: bob.name } });
      assert.equal(opened.type, 'direct_opened');
      const room = opened.type === 'direct_opened' ? opened.payload.room : '';
      const inv = await b.next('invited', (p) => p.room === room, 10_000);
      assert.equal(inv.visibility, 'direct');
      assert.equal(inv.peer, alice.name);
      const back = await ask(b, { type: 'open_direct', payload: { user: alice.name.toUpperCase() } });
      assert.ok(back.type === 'direct_opened' && back.payload.room === room && back.payload.user === alice.name, JSON.stringify(back));
      const again = await ask(a, { type: 'open_direct', payload: { user: bob.name } });
      assert.ok(again.type === 'direct_opened' && again.payload.room === room);
      assert.equal(await codeOf(a, { type: 'send_message', payload: { room, message: 'just us' } }), 'ok');
      assert.equal((await b.next('new_message', (p) => p.room === room, 10_000)).message, 'just us');
      const c = (await tab(B, carol)).c;
      for (const probe of [
        { type: 'join', payload: { room } },
        { type: 'history', payload: { room } },
        { type: 'resume', payload: { rooms: { [room]: 0 } } },
      ] as const) assert.equal(await codeOf(c, probe), 'forbidden', probe.type);
      assert.equal(await codeOf(a, { type: 'invite', payload: { room, user: carol.name } }), 'forbidden');
      assert.equal(await codeOf(a, { type: 'open_direct', payload: { user: alice.name } }), 'forbidden', 'not with yourself');
      assert.equal(await codeOf(a, { type: 'open_direct', payload: { user: uniqueName('ghost') } }), 'unknown_user');
      assert.equal(await codeOf(c, { type: 'create_room', payload: { room: 'dm.0123456789abcdef0123456789abcdef', visibility: 'public' } }), 'forbidden', 'direct names are kept');
      const listed = (await tab(A, alice)).welcome.rooms.find((m) => m.room === room);
      assert.deepEqual({ visibility: listed?.visibility, peer: listed?.peer, role: listed?.role }, { visibility: 'direct', peer: bob.name, role: 'member' });
      for (const x of [a, b, c]) x.close();
    });

    test('memberships are the user\'s: a new login and a new tab follow them, welcome lists them; leave ends one everywhere', async () => {
      const user = await account(A);
      const first = (await tab(A, user)).c;
      const pub = uniqueName('mine').toLowerCase();
      const priv = uniqueName('mine').toLowerCase();
      await ask(first, { type: 'join', payload: { room: pub } });
      await ask(first, { type: 'create_room', payload: { room: priv, visibility: 'private', title: 'Mine' } });
      await ask(first, { type: 'send_message', payload: { room: priv, message: 'note to self' } });
      first.close();
      const login = await api<{ token: string }>(B.url, '/login', { username: user.name, password: 'correct horse' });
      assert.equal(login.status, 200);
      const again = await tab(B, { ...user, token: login.body.token });
      const listed = again.welcome.rooms.map((m) => m.room);
      assert.deepEqual(listed, ['general', pub, priv]);
      const mine = again.welcome.rooms.find((m) => m.room === priv);
      assert.deepEqual(mine, { room: priv, visibility: 'private', title: 'Mine', role: 'owner', seq: 2 });
      assert.equal(again.welcome.room, 'general');
      // The new tab follows them: the first message of the private room reaches it live.
      const other = (await tab(A, user)).c;
      await ask(other, { type: 'send_message', payload: { room: priv, message: 'from the other tab' } });
      assert.equal((await again.c.next('new_message', (p) => p.room === priv, 10_000)).message, 'from the other tab');
      // A resume=1 connection lists them and follows none until its resume.
      const resuming = await tab(A, user, true);
      assert.equal(resuming.welcome.room, null);
      assert.deepEqual(resuming.welcome.rooms.map((m) => m.room), ['general', pub, priv]);
      // leave ends the membership: the user's other tabs stop following it too.
      assert.equal(await codeOf(other, { type: 'leave', payload: { room: pub } }), 'ok');
      await again.c.next('left', (p) => p.room === pub, 10_000);
      assert.deepEqual((await tab(B, user)).welcome.rooms.map((m) => m.room), ['general', priv]);
      for (const c of [again.c, other, resuming.c]) c.close();
    });

    test('GET /rooms lists public rooms (search, pages) and the caller\'s own; members list their room', async () => {
      const owner = await account(A);
      const o = (await tab(A, owner)).c;
      const tag = uniqueName('dir').toLowerCase();
      for (const r of ['a', 'b', 'c']) await ask(o, { type: 'create_room', payload: { room: `${tag}-${r}`, visibility: 'public', title: `Topic ${r.toUpperCase()}` } });
      await ask(o, { type: 'create_room', payload: { room: `${tag}-hidden`, visibility: 'private' } });
      const page1 = await api<RoomsPage>(B.url, `/rooms?q=${tag}&limit=2`, undefined, { token: owner.token, method: 'GET' });
      assert.equal(page1.status, 200);
      assert.deepEqual(page1.body.rooms, [
        { room: `${tag}-a`, title: 'Topic A', members: 1 },
        { room: `${tag}-b`, title: 'Topic B', members: 1 },
      ]);
      const page2 = await api<RoomsPage>(B.url, `/rooms?q=${tag}&limit=2&after=${page1.body.next ?? ''}`, undefined, { token: owner.token, method: 'GET' });
      assert.deepEqual(page2.body.rooms.map((r) => r.room), [`${tag}-c`]);
      assert.equal(page2.body.next, undefined);
      assert.deepEqual(
        page1.body.mine.filter((m) => m.room.startsWith(tag)).map((m) => [m.room, m.visibility, m.role]),
        ['a', 'b', 'c', 'hidden'].map((r) => [`${tag}-${r}`, r === 'hidden' ? 'private' : 'public', 'owner']),
      );
      assert.equal((await api(B.url, '/rooms', undefined, { method: 'GET' })).status, 401);
      assert.equal((await api(B.url, '/rooms?limit=0', undefined, { token: owner.token, method: 'GET' })).status, 400);
      assert.equal((await api(B.url, '/rooms?limit=abc', undefined, { token: owner.token, method: 'GET' })).status, 400);
      assert.equal((await api(B.url, '/rooms', {}, { token: owner.token, method: 'POST' })).status, 405);
      const members = await api<MembersPage>(A.url, `/rooms/${tag.toUpperCase()}-A/members`, undefined, { token: owner.token, method: 'GET' });
      assert.equal(members.status, 200);
      assert.deepEqual(members.body, { room: `${tag}-a`, members: [{ user: owner.name, role: 'owner' }] });
      assert.equal((await api(A.url, `/rooms/%ZZ/members`, undefined, { token: owner.token, method: 'GET' })).status, 403);
      o.close();
    });

    test('events sent right behind a join wait for it: join + send, change_room + send, join + leave, resume + send', async () => {
      const u = await account(A);
      const c = (await tab(A, u)).c;
      const [r1, r2, r3, r4] = ['p1', 'p2', 'p3', 'p4'].map((p) => uniqueName(p).toLowerCase()) as [string, string, string, string];
      c.send({ type: 'join', payload: { room: r1 }, ref: 'j1' });
      c.send({ type: 'send_message', payload: { room: r1, message: 'right behind' }, ref: 's1' });
      assert.equal((await c.next('ack', (p) => p.ref === 's1')).room, r1);
      c.send({ type: 'change_room', payload: { name: r2 }, ref: 'c2' });
      c.send({ type: 'send_message', payload: { message: 'to the new current room' }, ref: 's2' });
      assert.equal((await c.next('ack', (p) => p.ref === 's2')).room, r2);
      c.send({ type: 'join', payload: { room: r3 }, ref: 'j3' });
      c.send({ type: 'leave', payload: { room: r3 }, ref: 'l3' });
      assert.equal((await c.next('left', (_, f) => f.ref === 'l3')).room, r3);
      const back = await tab(A, u, true);
      back.c.send({ type: 'resume', payload: { rooms: { [r4]: 0 } }, ref: 'r4' });
      back.c.send({ type: 'send_message', payload: { room: r4, message: 'behind a resume' }, ref: 's4' });
      assert.equal((await back.c.next('ack', (p) => p.ref === 's4')).room, r4);
      c.close();
      back.c.close();
    });

    test('hostile payloads of the new events are refused with a code; the connection stays open', async () => {
      const u = await account(A);
      const c = (await tab(A, u)).c;
      const cases: [unknown, string][] = [
        [{ type: 'create_room', payload: { room: 'x', visibility: 'direct' } }, 'invalid_payload'],
        [{ type: 'create_room', payload: { room: 'x', visibility: 'public', title: 't'.repeat(101) } }, 'invalid_payload'],
        [{ type: 'create_room', payload: { room: 'x', visibility: 'public', title: 'nul\u0000' } }, 'invalid_payload'],
        [{ type: 'create_room', payload: { room: 'bad name!', visibility: 'public' } }, 'invalid_room'],
        [{ type: 'create_room', payload: { room: 'general', visibility: 'public' } }, 'room_exists'],
        [{ type: 'kick', payload: { room: 'general' } }, 'invalid_payload'],
        [{ type: 'set_role', payload: { room: 'general', user: u.name, role: 'admin' } }, 'invalid_payload'],
        [{ type: 'mute', payload: { room: 'general', user: u.name, durationMs: -5 } }, 'invalid_payload'],
        [{ type: 'mute', payload: { room: 'general', user: u.name, durationMs: 1e15 } }, 'invalid_payload'],
        [{ type: 'ban', payload: { room: 'general', user: 'x', reason: 'r'.repeat(201) } }, 'invalid_payload'],
        [{ type: 'open_direct', payload: { user: 42 } }, 'invalid_payload'],
        [{ type: 'invite', payload: { room: 'general', user: 'no such user!' } }, 'unknown_user'],
      ];
      for (const [i, [frame, code]] of cases.entries()) {
        c.send({ ...(frame as object), ref: `h${i}` });
        const err = await c.next('error', (p) => p.ref === `h${i}`);
        assert.equal(err.code, code, JSON.stringify(frame));
      }
      assert.equal(await codeOf(c, { type: 'send_message', payload: { message: 'still here' } }), 'ok');
      c.close();
    });
  });
}

// One node on SQLite: both "sites" are the same server.
let sqliteServer: TestServer;
scenarios('one node, SQLite', async () => {
  sqliteServer = await startTestServer({ rateLimitPerSec: 1000, rateLimitBurst: 1000, userRateLimitPerSec: 0 });
  return { sites: [sqliteServer, sqliteServer], stop: () => sqliteServer.stop() };
});

// Two nodes on Postgres and a Redis of their own: each user's connections spread over both.
scenarios('two nodes, Postgres and Redis', async () => {
  const redis = await OwnRedis.start();
  const cluster = await Cluster.start({ nodes: 2, redisUrl: redis.url, env: { PARLEY_REGISTER_MAX_PER_ADDRESS: '100000', PARLEY_REGISTER_WINDOW_MS: '1000' } });
  const [a, b] = cluster.nodes;
  assert.ok(a !== undefined && b !== undefined);
  return {
    sites: [a, b],
    stop: async () => {
      await cluster.stop();
      await redis.stop();
    },
  };
});

describe('rooms with members: restarts, closed room creation, migration', () => {
  test('memberships survive a restart of the server', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-rooms-'));
    try {
      let server = await startTestServer({ dataDir });
      const u = await account(server);
      const first = await tab(server, u);
      assert.deepEqual(first.welcome.rooms, [{ room: 'general', visibility: 'public', title: '', role: 'member', seq: 1 }], 'the first user of a new server does not own general');
      const c = first.c;
      const room = uniqueName('kept').toLowerCase();
      await ask(c, { type: 'create_room', payload: { room, visibility: 'private', title: 'Kept' } });
      await ask(c, { type: 'send_message', payload: { room, message: 'kept' } });
      c.close();
      await server.stop();
      server = await startTestServer({ dataDir });
      try {
        const again = await tab(server, u);
        assert.deepEqual(again.welcome.rooms.find((m) => m.room === room), { room, visibility: 'private', title: 'Kept', role: 'owner', seq: 2 });
        const h = await ask(again.c, { type: 'history', payload: { room } });
        assert.ok(h.type === 'history' && chat(h.payload.messages)[0]?.message === 'kept');
        again.c.close();
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('roomCreation closed: join and resume of a private room and of no room answer alike; new users still land in general', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-rooms-'));
    try {
      let server = await startTestServer({ dataDir });
      const owner = await account(server);
      const o = (await tab(server, owner)).c;
      const room = uniqueName('closed').toLowerCase();
      await ask(o, { type: 'create_room', payload: { room, visibility: 'private' } });
      o.close();
      await server.stop();
      server = await startTestServer({ dataDir, roomCreation: 'closed' });
      try {
        const x = await tab(server, await account(server));
        assert.deepEqual(x.welcome.rooms.map((m) => m.room), ['general']);
        const none = uniqueName('none').toLowerCase();
        const frames = (r: string): Omit<ClientFrame, 'ref'>[] => [
          { type: 'join', payload: { room: r } },
          { type: 'change_room', payload: { name: r } },
        ];
        for (const [i, f] of frames(room).entries()) assert.deepEqual(await refusal(x.c, f), await refusal(x.c, frames(none)[i] ?? f), f.type);
        const r1 = await ask(x.c, { type: 'resume', payload: { rooms: { [room]: 0 } } });
        const r2 = await ask(x.c, { type: 'resume', payload: { rooms: { [none]: 0 } } });
        assert.ok(r1.type === 'error' && r2.type === 'error');
        if (r1.type === 'error' && r2.type === 'error') assert.deepEqual([r1.payload.code, r1.payload.message], [r2.payload.code, r2.payload.message]);
        assert.equal(await codeOf(x.c, { type: 'create_room', payload: { room: none, visibility: 'public' } }), 'forbidden');
        x.c.close();
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a database written before rooms had members opens and keeps its history: rooms are public, their senders members', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-v4-'));
    // test/fixtures/parley-v4.db: written by the build before this migration (schema version 4):
    // users Alice, bob, carol (password "correct horse battery"); general: Alice, bob, Alice;
    // design: bob, carol; ops: carol.
    copyFileSync(new URL('../../test/fixtures/parley-v4.db', import.meta.url), join(dataDir, 'parley.db'));
    const server = await startTestServer({ dataDir });
    try {
      const login = await api<{ token: string; otp: string; user: string }>(server.url, '/login', { username: 'bob', password: 'correct horse battery' });
      assert.equal(login.status, 200);
      const bob: Account = { name: 'bob', password: 'correct horse battery', token: login.body.token, otp: login.body.otp };
      const { c, welcome } = await tab(server, bob);
      assert.deepEqual(
        welcome.rooms.map((m) => [m.room, m.visibility, m.role, m.seq]),
        [
          ['general', 'public', 'member', 3],
          ['design', 'public', 'member', 2],
        ],
      );
      const h = await ask(c, { type: 'history', payload: { room: 'general' } });
      assert.ok(h.type === 'history');
      if (h.type === 'history') {
        assert.deepEqual(
          h.payload.messages.map((m) => (isRoomEvent(m) ? m.type : [m.seq, m.from, m.message])),
          [
            [3, 'Alice', 'general 3 from Alice'],
            [2, 'bob', 'general 2 from bob'],
            [1, 'Alice', 'general 1 from Alice'],
          ],
        );
      }
      const dir = await api<RoomsPage>(server.url, '/rooms', undefined, { token: bob.token, method: 'GET' });
      assert.deepEqual(dir.body.rooms, [
        { room: 'design', title: '', members: 2 },
        { room: 'general', title: '', members: 2 },
        { room: 'ops', title: '', members: 1 },
      ]);
      // New messages go on from the old seqs.
      assert.equal(await codeOf(c, { type: 'send_message', payload: { room: 'general', message: 'after the upgrade' } }), 'ok');
      assert.equal((await c.next('new_message', (p) => p.message === 'after the upgrade')).seq, 4);
      // A migrated room has no owner until the operator gives it one, beside the running server.
      assert.equal(await codeOf(c, { type: 'kick', payload: { room: 'design', user: 'carol' } }), 'forbidden');
      const given = await runCli(['room', 'role', 'Design', 'BOB', 'owner', '--data-dir', dataDir]);
      assert.equal(given.code, 0, given.stderr);
      assert.match(given.stdout, /bob is an owner of design/);
      assert.equal((await runCli(['room', 'role', 'design', 'bob', 'admin', '--data-dir', dataDir])).code, 2);
      assert.equal((await runCli(['room', 'role', 'nowhere', 'bob', 'owner', '--data-dir', dataDir])).code, 2);
      assert.equal(await codeOf(c, { type: 'kick', payload: { room: 'design', user: 'carol' } }), 'ok');
      c.close();
    } finally {
      await server.stop();
    }
  });
});
