/**
 * Browser tests of the chat page: a real server (SQLite in a temp dir) serving the built page
 * (packages/web/dist/public), driven in Chromium (the system's /usr/bin/chromium) by
 * playwright-core. Run `npm run build` first (npm test does).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { type Browser, type BrowserContext, type BrowserContextOptions, chromium, type Page } from 'playwright-core';
import { account, connect, sleep, startTestServer, uniqueName, type TestServer } from '@parley/testing/helpers';
import { TcpProxy } from '@parley/testing/proxy';

const CHROMIUM = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';
const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const PASSWORD = 'correct horse battery';
const DESKTOP = { width: 1280, height: 800 };
const MOBILE = { width: 375, height: 812 };
/** Screenshots go to docs/ when PARLEY_SCREENSHOTS=1 (to refresh the README's), else to a temp dir. */
const SHOTS = process.env.PARLEY_SCREENSHOTS === '1' ? join(REPO, 'docs') : mkdtempSync(join(tmpdir(), 'parley-shots-'));

let browser: Browser;

before(async () => {
  // No silent skip: Chromium is part of the test setup (.ci/run installs Debian's package).
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set PARLEY_CHROMIUM)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
});

/** A browser context plus the page errors and console errors (CSP violations among them) it saw. */
interface Tab {
  context: BrowserContext;
  page: Page;
  problems: string[];
  dialogs: string[];
}

async function tab(viewport = DESKTOP, extra: BrowserContextOptions = {}): Promise<Tab> {
  const context = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC', reducedMotion: 'reduce', ...extra });
  const page = await context.newPage();
  const problems: string[] = [];
  const dialogs: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    // A refused connection while the server restarts is expected; anything else is a bug.
    if (msg.type() === 'error' && !/ERR_CONNECTION_REFUSED|WebSocket connection to .* failed|Failed to load resource/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  return { context, page, problems, dialogs };
}

/** Opens the page and registers (or, with `login`, logs in) as `name`; resolves once online. */
async function signIn(t: Tab, server: { url: string }, name: string, how: 'register' | 'login' = 'register'): Promise<void> {
  const { page } = t;
  await page.goto(server.url);
  await page.locator('#auth-form').waitFor();
  await page.fill('#username', name);
  await page.fill('#password', PASSWORD);
  await page.click(how === 'register' ? '#register-btn' : '#login-btn');
  await page.locator('#chat').waitFor();
  await online(page);
}

async function online(page: Page, timeout = 10_000): Promise<void> {
  await page.locator('#conn[data-state="online"]').waitFor({ timeout });
}

async function joinRoom(page: Page, room: string): Promise<void> {
  await ensureNav(page, true);
  await page.fill('#join-input', room);
  await page.press('#join-input', 'Enter');
  await page.locator(`.room.current[data-room="${room}"]`).waitFor({ state: 'attached' });
  await page.locator('#room-title', { hasText: room }).waitFor();
}

/** On phone widths the room list is a drawer: open or close it. */
async function ensureNav(page: Page, open: boolean): Promise<void> {
  if (!(await page.locator('#nav-open').isVisible())) return;
  const isOpen = (await page.locator('#nav-open').getAttribute('aria-expanded')) === 'true';
  if (isOpen !== open) await page.click(open ? '#nav-open' : '#nav-close');
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#message', text);
  await page.press('#message', 'Enter');
}

/** Waits until a delivered (acked) message with this text is in the list; returns its seq. */
async function delivered(page: Page, text: string, timeout = 10_000): Promise<number> {
  const li = page.locator('#messages li.msg[data-seq]', { has: page.locator('.msg-text', { hasText: text }) }).last();
  await li.waitFor({ timeout });
  return Number(await li.getAttribute('data-seq'));
}

/** Every seq shown in the list, in DOM order. */
function seqs(page: Page): Promise<number[]> {
  return page.$$eval('#messages li.msg[data-seq]', (els) => els.map((e) => Number((e as HTMLElement).dataset.seq)));
}

/** The texts of the list's messages, in DOM order. */
function texts(page: Page): Promise<string[]> {
  return page.$$eval('#messages li.msg .msg-text', (els) => els.map((e) => e.textContent ?? ''));
}

function assertClean(...tabs: Tab[]): void {
  for (const t of tabs) {
    assert.deepEqual(t.problems, [], 'no page errors, no console errors (CSP violations included)');
    assert.deepEqual(t.dialogs, [], 'no dialogs');
  }
}

describe('chat page in Chromium', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
    const page = await fetch(server.url + '/');
    assert.match(await page.text(), /app\.js\?v=/, 'the server serves the built page (packages/web/dist/public)');
  });

  after(async () => {
    await server?.stop();
  });

  test('two users register, join a room, talk, see each other online and typing', { timeout: 60_000 }, async () => {
    const a = await tab();
    const b = await tab();
    try {
      const alice = uniqueName('alice');
      const bob = uniqueName('bob');
      await signIn(a, server, alice);
      await signIn(b, server, bob);
      const room = `team-${process.pid}`;
      await joinRoom(a.page, room);
      await joinRoom(b.page, room);

      // Presence: each sees the other (and themselves) online in the room.
      await a.page.locator(`#member-list [data-user="${bob}"]`).waitFor();
      await b.page.locator(`#member-list [data-user="${alice}"]`).waitFor();
      assert.equal(await a.page.locator('#members-title').textContent(), 'Online — 2');

      // Typing: bob types, alice sees it; bob's message clears it.
      await b.page.click('#message');
      await b.page.keyboard.type('hello ali', { delay: 20 });
      await a.page.locator('#typing', { hasText: `${bob} is typing…` }).waitFor();
      await b.page.keyboard.type('ce!');
      await b.page.keyboard.press('Enter');
      const s1 = await delivered(a.page, 'hello alice!');
      await a.page.locator('#typing', { hasText: 'typing' }).waitFor({ state: 'detached' }).catch(() => undefined);
      assert.equal((await a.page.locator('#typing').textContent()) ?? '', '', 'typing cleared when bob’s message arrived');
      assert.equal(await b.page.inputValue('#message'), '', 'the composer is cleared after sending');

      await say(a.page, 'hi bob 👋\nsecond line');
      const s2 = await delivered(b.page, 'second line');
      assert.ok(s2 > s1);
      for (const t of [a, b]) {
        assert.deepEqual(await seqs(t.page), [s1, s2]);
        assert.deepEqual(await texts(t.page), ['hello alice!', 'hi bob 👋\nsecond line']);
      }
      // Author and grouping: two authors → two group heads.
      assert.equal(await a.page.locator('#messages li.msg.group-start').count(), 2);
      assert.equal(await a.page.locator('#messages li.msg.group-start .msg-author').first().textContent(), bob);

      // Unread: alice looks at general; bob's next message in the room counts as unread there.
      await a.page.click('.room-btn[data-room="general"]');
      await a.page.locator('.room.current[data-room="general"]').waitFor();
      await say(b.page, 'are you there?');
      await a.page.locator(`.room[data-room="${room}"] .badge`, { hasText: '1' }).waitFor();
      assert.equal(await a.page.title(), '(1) Parley');
      await a.page.click(`.room-btn[data-room="${room}"]`);
      await delivered(a.page, 'are you there?');
      assert.equal(await a.page.locator(`.room[data-room="${room}"] .badge`).count(), 0);
      assert.equal(await a.page.title(), 'Parley');
      assertClean(a, b);
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });

  test('server restart: reconnecting, then online; every message exactly once; offline sends delivered', { timeout: 90_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-web-'));
    let s1: TestServer | undefined = await startTestServer({ dataDir });
    let s2: TestServer | undefined;
    const port = s1.port;
    const a = await tab();
    const b = await tab(MOBILE);
    try {
      const alice = uniqueName('alice');
      const bob = uniqueName('bob');
      await signIn(a, s1, alice);
      await signIn(b, s1, bob);
      await say(a.page, 'before the restart');
      await delivered(b.page, 'before the restart');

      await s1.close();
      s1 = undefined;
      for (const t of [a, b]) {
        await t.page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 10_000 });
        assert.match((await t.page.locator('#conn-text').textContent()) ?? '', /Reconnecting/);
        await t.page.locator('#offline-note').waitFor();
      }
      assert.match((await a.page.locator('#conn-live').textContent()) ?? '', /Reconnecting/, 'announced in the live region');

      // Sent while the server is down: shown as pending, delivered after the restart.
      await say(a.page, 'sent while offline');
      await a.page.locator('#messages li.msg.pending', { hasText: 'sent while offline' }).waitFor();
      await sleep(300);

      s2 = await startTestServer({ dataDir, port });
      await online(a.page, 40_000);
      await online(b.page, 40_000);
      await a.page.locator('#offline-note').waitFor({ state: 'hidden' });
      await delivered(a.page, 'sent while offline', 20_000);
      await delivered(b.page, 'sent while offline', 20_000);
      assert.equal(await a.page.locator('#messages li.msg.pending').count(), 0, 'nothing left pending');

      await say(b.page, 'after the restart');
      await delivered(a.page, 'after the restart');
      await delivered(b.page, 'after the restart');
      await sleep(500); // let any duplicate arrive before counting

      for (const t of [a, b]) {
        const list = await seqs(t.page);
        assert.deepEqual(list, [...new Set(list)].sort((x, y) => x - y), 'each seq once, in order');
        assert.deepEqual(await texts(t.page), ['before the restart', 'sent while offline', 'after the restart']);
      }
      assertClean(a, b);
    } finally {
      await a.context.close();
      await b.context.close();
      await s1?.close();
      await s2?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('retention pruned part of a room while the page was offline: a marker says how many are gone, between the messages around it', { timeout: 90_000 }, async () => {
    // A server that keeps the newest 5 messages per room (retention run by the test), reached
    // through a proxy the test can cut: the page's network, not the server, goes away.
    const kept = await startTestServer({ historyMaxPerRoom: 5 });
    const proxy = await TcpProxy.start(kept.port);
    const via = { url: `http://127.0.0.1:${proxy.port}` };
    const a = await tab();
    try {
      const alice = uniqueName('alice');
      await signIn(a, via, alice);
      const room = `kept-${process.pid}`;
      await joinRoom(a.page, room);
      const dave = await account(kept, uniqueName('dave'), PASSWORD);
      const ws = await connect(kept, dave.otp);
      ws.send({ type: 'join', payload: { room } });
      await ws.next('joined', (p) => p.room === room);
      const say = async (i: number): Promise<void> => {
        ws.send({ type: 'send_message', payload: { room, message: `line ${i}` }, ref: i });
        await ws.next('ack', (p) => p.ref === i);
      };
      for (let i = 1; i <= 3; i++) await say(i);
      await delivered(a.page, 'line 3');

      proxy.cut();
      await a.page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 20_000 });
      for (let i = 4; i <= 23; i++) await say(i);
      await kept.retention.runOnce(); // 1..18 are deleted: 19..23 are kept
      proxy.restore();
      await online(a.page, 60_000);
      await delivered(a.page, 'line 23', 20_000);

      // Seqs 1 and 2 of the room are its room events (made by alice's join, joined by dave): line i is seq i + 2.
      // What the page had stays (the server deleted 1..3 too: no reload); the marker stands for 4..18.
      assert.deepEqual(await seqs(a.page), [3, 4, 5, 21, 22, 23, 24, 25]);
      const marker = a.page.locator('#messages li.gone');
      assert.equal(await marker.count(), 1);
      assert.equal(await marker.textContent(), '15 messages are no longer available');
      assert.deepEqual(await marker.evaluate((el) => [(el as HTMLElement).dataset.from, (el as HTMLElement).dataset.to]), ['6', '20']);
      const around = await a.page.$$eval('#messages > li:not(.event)', (els) => els.map((e) => (e.classList.contains('gone') ? 'gone' : ((e as HTMLElement).dataset.seq ?? 'day'))).filter((k) => k !== 'day'));
      assert.deepEqual(around, ['3', '4', '5', 'gone', '21', '22', '23', '24', '25'], 'between the messages around it');
      assert.equal(await a.page.locator('#messages li.event[data-type="member_joined"]', { hasText: `${dave.name} joined` }).count(), 1, "dave's join is a system line");
      assert.equal(await a.page.locator(`#messages li.msg[data-seq="21"]`).evaluate((el) => el.classList.contains('group-start')), true, 'the message after it starts a group of its own');

      // Live messages go on below it.
      await say(24);
      await delivered(a.page, 'line 24');
      assert.deepEqual((await seqs(a.page)).slice(-2), [25, 26]);
      mkdirSync(SHOTS, { recursive: true });
      await a.page.screenshot({ path: join(SHOTS, 'gone-marker.png') });

      // A reload shows what the server still has (the newest 5 after another retention pass),
      // and the top of the room says that older ones are gone.
      await kept.retention.runOnce();
      await a.page.reload();
      await online(a.page, 20_000);
      await delivered(a.page, 'line 24');
      assert.deepEqual(await seqs(a.page), [22, 23, 24, 25, 26]);
      await a.page.locator('#log-top[data-state="pruned"]', { hasText: 'Older messages are no longer available.' }).waitFor();
      await a.page.screenshot({ path: join(SHOTS, 'gone-top.png') });
      ws.close();
      assertClean(a);
    } finally {
      await a.context.close();
      await proxy.close();
      await kept.stop();
    }
  });

  test('message text is rendered as text: no element, no script, no dialog', { timeout: 60_000 }, async () => {
    const a = await tab();
    try {
      await signIn(a, server, uniqueName('mallory'));
      const evil = '<img src=x onerror=alert(1)>';
      await say(a.page, evil);
      await delivered(a.page, evil);
      const check = async () => {
        const last = a.page.locator('#messages li.msg .msg-text').last();
        assert.equal(await last.textContent(), evil);
        assert.equal(await a.page.locator('#messages img, #messages script').count(), 0);
        assert.equal(await a.page.locator('img[src="x"]').count(), 0);
      };
      await check();

      // A reload keeps the session (token in sessionStorage) and renders history the same way.
      await a.page.reload();
      await a.page.locator('#chat').waitFor();
      assert.equal(await a.page.locator('#auth').isHidden(), true, 'no login form after a reload');
      await online(a.page);
      await delivered(a.page, evil);
      await check();
      await sleep(300);
      assertClean(a);
    } finally {
      await a.context.close();
    }
  });

  test('sign-in errors come from the server; older history loads on scroll without moving the view', { timeout: 60_000 }, async () => {
    const a = await tab();
    try {
      const name = uniqueName('carol');
      await a.page.goto(server.url);
      await a.page.fill('#username', name);
      await a.page.fill('#password', 'short');
      await a.page.click('#register-btn');
      await a.page.locator('#auth-error', { hasText: 'Passwords are at least 8 characters.' }).waitFor();
      await a.page.fill('#password', PASSWORD);
      await a.page.click('#login-btn');
      await a.page.locator('#auth-error', { hasText: 'Unknown user or wrong password.' }).waitFor();
      await a.page.click('#register-btn');
      await online(a.page);

      // 130 messages of history in a room, written straight to the store before the page joins it.
      const room = `long-${process.pid}`;
      const t0 = Date.now() - 3_600_000;
      await server.store.appendMessages(
        Array.from({ length: 130 }, (_, i) => ({ room, from: 'dave', message: `line ${i + 1}`, sent: new Date(t0 + i * 1000).toISOString() })),
      );
      await joinRoom(a.page, room);

      // Reload: the room opens at the bottom with the newest page; older pages load on scrolling up.
      await a.page.reload();
      await online(a.page);
      await delivered(a.page, 'line 130');
      const log = a.page.locator('#log');
      assert.ok(await log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 60), 'opens at the bottom');
      const firstBefore = Math.min(...(await seqs(a.page)));
      assert.ok(firstBefore > 1, 'only the newest page at first');

      // Scroll to the top: older messages are prepended and the message that was on top stays
      // where it was on the screen.
      const topBefore = await a.page.evaluate((seq) => {
        const log = document.getElementById('log') as HTMLElement;
        log.scrollTop = 0;
        return (document.querySelector(`#messages li[data-seq="${seq}"] .msg-text`) as HTMLElement).getBoundingClientRect().top;
      }, firstBefore);
      await a.page.waitForFunction((seq) => Number((document.querySelector('#messages li[data-seq]') as HTMLElement | null)?.dataset.seq) < seq, firstBefore);
      await sleep(100);
      const topAfter = await a.page.evaluate((seq) => (document.querySelector(`#messages li[data-seq="${seq}"] .msg-text`) as HTMLElement).getBoundingClientRect().top, firstBefore);
      assert.ok(Math.abs(topAfter - topBefore) <= 2, `the message that was on top stayed put (${topBefore} → ${topAfter})`);

      // Keep scrolling up until the beginning of the room.
      for (let i = 0; i < 10 && (await a.page.locator('#messages li[data-seq="1"]').count()) === 0; i++) {
        await log.evaluate((el) => (el.scrollTop = 0));
        await sleep(250);
      }
      await a.page.locator('#log-top[data-state="start"]').waitFor();
      assert.deepEqual(await seqs(a.page), Array.from({ length: 130 }, (_, i) => i + 1), 'all 130, once each, in order');

      // A new message while scrolled up does not yank the view; the "New messages" button appears.
      await say(a.page, 'a new one');
      await delivered(a.page, 'a new one');
      assert.ok(await log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 60), 'own message scrolls into view');

      // Someone else's message while the reader is scrolled up: the view stays, a button offers to jump.
      await log.evaluate((el) => (el.scrollTop = 0));
      await sleep(200);
      const dave = await account(server, uniqueName('dave'), PASSWORD);
      const ws = await connect(server, dave.otp);
      ws.send({ type: 'join', payload: { room } });
      await ws.next('joined', (p) => p.room === room);
      ws.send({ type: 'send_message', payload: { room, message: 'from dave, live' }, ref: 1 });
      await ws.next('ack');
      ws.close();
      await delivered(a.page, 'from dave, live');
      await a.page.locator('#jump').waitFor();
      assert.ok(await log.evaluate((el) => el.scrollTop < 400), 'the view did not move to the bottom');
      await a.page.click('#jump');
      assert.ok(await log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 60), 'jumped to the bottom');
      await a.page.locator('#jump').waitFor({ state: 'hidden' });
      assertClean(a);
    } finally {
      await a.context.close();
    }
  });

  test('rooms with members: room events as system lines, a direct message from the people list, a removed user sees why', { timeout: 60_000 }, async () => {
    const a = await tab();
    try {
      const alice = uniqueName('alice');
      await signIn(a, server, alice);
      const room = `mod-${process.pid}`;
      await joinRoom(a.page, room); // alice makes it, and owns it
      const bob = await account(server, uniqueName('bob'), PASSWORD);
      const ws = await connect(server, bob.otp);
      ws.send({ type: 'join', payload: { room } });
      await ws.next('joined', (p) => p.room === room);
      await a.page.locator('#messages li.event[data-type="member_joined"]', { hasText: `${bob.name} joined` }).waitFor();

      // A direct message with bob, from the people list: a "Direct messages" entry named after him.
      await a.page.locator(`#member-list [data-dm="${bob.name}"]`).click();
      await a.page.locator('#dm-list .room.current', { hasText: bob.name }).waitFor();
      await say(a.page, 'psst');
      await delivered(a.page, 'psst');

      // alice kicks bob (through the protocol, as an owner's client would): the line says who and why.
      await a.page.locator(`.room-btn[data-room="${room}"]`).click();
      const aliceWs = await connect(server, (await account(server, alice, PASSWORD)).otp);
      aliceWs.send({ type: 'kick', payload: { room, user: bob.name, reason: 'spam' }, ref: 'k' });
      await aliceWs.next('ack', (p) => p.ref === 'k');
      await a.page.locator('#messages li.event[data-type="member_left"]', { hasText: `You kicked ${bob.name}: spam` }).waitFor();
      const removed = await ws.next('removed', (p) => p.room === room);
      assert.equal(removed.reason, 'spam');
      ws.close();
      aliceWs.close();
      assertClean(a);
    } finally {
      await a.context.close();
    }
  });

  test('a removed user sees by whom and why; the room leaves the sidebar', { timeout: 60_000 }, async () => {
    const b = await tab();
    try {
      const bob = uniqueName('bob');
      await signIn(b, server, bob);
      const owner = await account(server, uniqueName('owner'), PASSWORD);
      const ws = await connect(server, owner.otp);
      const room = `priv-${process.pid}`;
      ws.send({ type: 'create_room', payload: { room, visibility: 'private' }, ref: 'c' });
      await ws.next('room_created', (p) => p.room === room);
      ws.send({ type: 'invite', payload: { room, user: bob }, ref: 'i' });
      await ws.next('ack', (p) => p.ref === 'i');
      await b.page.locator(`#room-list .room[data-room="${room}"]`).waitFor();
      ws.send({ type: 'kick', payload: { room, user: bob, reason: 'off topic' }, ref: 'k' });
      await b.page.locator('#toasts .toast', { hasText: `${owner.name} removed you from #${room}: off topic` }).waitFor();
      await b.page.locator(`#room-list .room[data-room="${room}"]`).waitFor({ state: 'detached' });
      ws.close();
      assertClean(b);
    } finally {
      await b.context.close();
    }
  });

  test('screenshots: desktop 1280×800 and phone 375×812', { timeout: 90_000 }, async () => {
    const viewer = await tab(DESKTOP);
    const phone = await tab(MOBILE, { deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const others = [await tab(), await tab()];
    try {
      // Fresh names: this suite's server has its own empty data dir.
      const [maya, leo, sam] = ['maya', 'leo', 'sam'];
      const room = 'design';
      await signIn(viewer, server, maya);
      await signIn(others[0] as Tab, server, leo);
      await signIn(others[1] as Tab, server, sam);
      const [leoPage, samPage] = others.map((t) => t.page) as [Page, Page];
      for (const p of [viewer.page, leoPage, samPage]) await joinRoom(p, room);
      await joinRoom(viewer.page, 'random');
      await viewer.page.click(`.room-btn[data-room="${room}"]`);

      const script: [Page, string][] = [
        [leoPage, 'Morning! The new onboarding mockups are up in the shared folder.'],
        [leoPage, 'Biggest change: the sign-up flow is down to two steps.'],
        [viewer.page, 'Nice, looking now'],
        [samPage, 'I checked them on my phone on the train, the spacing feels much calmer.'],
        [viewer.page, 'Agreed. One question: do we still need the team-size step?\nWe could ask for it later, in settings.'],
        [leoPage, 'Good call, I will move it out and post a new version after lunch.'],
      ];
      for (const [p, text] of script) {
        await say(p, text);
        await delivered(viewer.page, text.split('\n')[0] as string);
      }
      // Unread messages in another room, for the sidebar badge.
      await samPage.click('.room-btn[data-room="general"]');
      await say(samPage, 'coffee at 3?');
      await viewer.page.locator('.room[data-room="general"] .badge').waitFor();
      await samPage.click(`.room-btn[data-room="${room}"]`);

      // The phone: same user, its own tab.
      await phone.page.goto(server.url);
      await phone.page.fill('#username', maya);
      await phone.page.fill('#password', PASSWORD);
      await phone.page.click('#login-btn');
      await online(phone.page);
      await joinRoom(phone.page, room);
      await ensureNav(phone.page, false);
      await delivered(phone.page, 'Good call');
      // Something new in another room: the phone's menu button shows the unread count.
      await leoPage.click('.room-btn[data-room="general"]');
      await say(leoPage, 'lunch at 12:30?');
      await phone.page.locator('#nav-badge:not([hidden])', { hasText: '1' }).waitFor();
      await leoPage.click(`.room-btn[data-room="${room}"]`);

      mkdirSync(SHOTS, { recursive: true });
      await samPage.click('#message');
      await samPage.keyboard.type('Sounds', { delay: 20 });

      await viewer.page.locator('#typing', { hasText: `${sam} is typing…` }).waitFor();
      await viewer.page.mouse.move(0, 0);
      await viewer.page.screenshot({ path: join(SHOTS, 'screenshot-desktop.png') });

      await samPage.keyboard.press('Backspace');
      await sleep(2100);
      await samPage.keyboard.type(' good', { delay: 20 });
      await phone.page.locator('#typing', { hasText: `${sam} is typing…` }).waitFor();
      await phone.page.screenshot({ path: join(SHOTS, 'screenshot-mobile.png') });
      assertClean(viewer, phone, ...others);
    } finally {
      for (const t of [viewer, phone, ...others]) await t.context.close();
    }
  });
});
