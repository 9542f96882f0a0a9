/**
 * A fault run: a cluster of three Parley processes on Postgres (reached through a TcpProxy, so
 * Postgres can be made unreachable) and a redis-server of its own, SDK clients spread over the
 * nodes sending and receiving across them, and the faults of issue 15 caused for real, one
 * method each. Between faults, `caughtUp` lets the traffic settle, waits until every member holds
 * every stored message of its rooms, and records a mark: the stored count and every node's
 * metrics. At the end, `invariants()` checks the store and every member (invariants.ts) and
 * `metricsViolations()` checks that the metrics counted what happened.
 *
 * Used by the server's fault test (one test per fault) and by `npm run soak` (the same faults,
 * over and over, for longer). The SDK is given by the caller (`client`): this package cannot
 * depend on @parley/client.
 *
 * Every method throws FaultError (with what went wrong) when the fault was not handled; the run
 * stays usable for the next one.
 */
import { Cluster, OwnRedis, waitFor, type Node } from './cluster.js';
import { losePublication, scrape, type LostPublication, type Scrape } from './faults.js';
import { check, countStored, ranges, readStored, type InvariantReport } from './invariants.js';
import { account, type Account, Member, PASSWORD, Sends, sleep, Traffic, type Sdk, type SendRecord, type Sender } from './members.js';
import { PG_URL } from './pg.js';
import { TcpProxy } from './proxy.js';
import pg from 'pg';
import type { Wire } from './wire.js';

export class FaultError extends Error {
  override readonly name = 'FaultError';
}

/** What the caller's client factory gets: build a ParleyClient with `url: urls`, these credentials, `rooms: []` and `WebSocket: wire.WebSocket`. */
export interface ClientSpec {
  urls: string[];
  token: string;
  username: string;
  password: string;
  wire: Wire;
}

export interface FaultRunOptions {
  client: (spec: ClientSpec) => Sdk;
  /** Each sender sends one message per this many ms. Default 700. */
  intervalMs?: number;
  /** Members spread over the three nodes, every one a sender. Default 9. */
  members?: number;
  /** Progress lines (the soak prints them). */
  log?: (line: string) => void;
}

interface NodeMark {
  url: string;
  pid: number | undefined;
  metrics: Scrape | undefined;
}

export interface Mark {
  phase: string;
  at: number;
  /** Taken with the traffic held and every member caught up (counts comparable), or during a fault. */
  quiet: boolean;
  stored: number;
  nodes: NodeMark[];
}

interface Window {
  kind: 'redis' | 'postgres';
  /** When the backend went and came back. */
  downAt: number;
  upAt: number;
  before: number;
  after: number;
}

const ROOM_A = 'fa';
const ROOM_B = 'fb';
const ROOM_D1 = 'fd1';
const ROOM_QUIET = 'fquiet';

export class FaultRun {
  readonly sends = new Sends();
  readonly members: Member[] = [];
  readonly marks: Mark[] = [];
  private readonly windows: Window[] = [];
  private readonly users = new Map<Member, string>();
  private readonly traffic: Traffic;
  private readonly senders: Sender[] = [];
  private quiet: { q1: Member; q2: Member } | undefined;
  /** A member that only receives (a sender proves itself alive with every frame: it would never be found stalled). */
  private reader: Member | undefined;
  private d1Accounts: Account[] = [];
  private d1Node: Node | undefined;
  /** Each room's latest seq at the last mark. */
  private lastTop = new Map<string, number>();

  private constructor(
    readonly redis: OwnRedis,
    readonly proxy: TcpProxy,
    readonly cluster: Cluster,
    private readonly options: FaultRunOptions,
  ) {
    this.traffic = new Traffic(this.sends, this.senders, options.intervalMs ?? 700);
  }

  static async start(options: FaultRunOptions): Promise<FaultRun> {
    const redis = await OwnRedis.start();
    const proxy = await TcpProxy.start(Number(new URL(PG_URL).port || 5432), new URL(PG_URL).hostname);
    let cluster: Cluster;
    try {
      cluster = await Cluster.start({
        nodes: 3,
        redisUrl: redis.url,
        env: {
          PARLEY_POSTGRES_URL: proxy.url(PG_URL),
          // A stalled reader is found by its unanswered pings within seconds.
          PARLEY_PING_INTERVAL_MS: '2000',
          PARLEY_PONG_TIMEOUT_MS: '3000',
        },
      });
    } catch (err) {
      await proxy.close();
      await redis.stop();
      throw err;
    }
    const run = new FaultRun(redis, proxy, cluster, options);
    try {
      await run.setUp();
    } catch (err) {
      await run.stop();
      throw err;
    }
    return run;
  }

  private log(line: string): void {
    this.options.log?.(line);
  }

  private get urls(): string[] {
    return this.cluster.nodes.slice(0, 3).map((n) => n.url);
  }

  private async newMember(name: string, urls: string[], acct?: Account): Promise<Member> {
    const a = acct ?? (await account(urls[0] ?? '', name));
    const m = new Member({ name, client: (wire) => this.options.client({ urls, token: a.token, username: a.name, password: PASSWORD, wire }) });
    this.users.set(m, a.name);
    await m.sdk.connect();
    this.members.push(m);
    return m;
  }

  private userOf(m: Member): string {
    return this.users.get(m) ?? m.name;
  }

  private async setUp(): Promise<void> {
    const tag = `${process.pid % 10000}x${Math.floor(Math.random() * 1e4)}`;
    const n = this.options.members ?? 9;
    const urls = this.urls;
    for (let i = 0; i < n; i++) {
      const home = i % 3;
      const rotated = [...urls.slice(home), ...urls.slice(0, home)];
      const m = await this.newMember(`m${i}_${tag}`, rotated);
      const rooms = [ROOM_A];
      if (i % 2 === 1) rooms.push(ROOM_B);
      // Members on nodes 1 and 2 in the room that node 4 will first open during an outage.
      if (i === 0 || i === 4) rooms.push(ROOM_D1);
      await m.join(...rooms);
      this.senders.push({ member: m, user: this.userOf(m), rooms });
    }
    // The quiet room: one member on node 1 (the sender), one on node 2 (the receiver), pinned.
    const q1 = await this.newMember(`q1_${tag}`, [urls[0] ?? '']);
    const q2 = await this.newMember(`q2_${tag}`, [urls[1] ?? '']);
    await q1.join(ROOM_QUIET);
    await q2.join(ROOM_QUIET);
    this.quiet = { q1, q2 };
    this.reader = await this.newMember(`r_${tag}`, urls);
    await this.reader.join(ROOM_A, ROOM_B);
    // Accounts for node 4's members (made now: while Redis is down nobody can register or log in).
    this.d1Accounts = [await account(urls[0] ?? '', `p1_${tag}`), await account(urls[0] ?? '', `p2_${tag}`)];
    this.traffic.start();
    await sleep(1000);
    await this.caughtUp('start');
  }

  async stop(): Promise<void> {
    await this.traffic.stop(5000).catch(() => undefined);
    for (const m of this.members) m.close();
    this.proxy.restore();
    await this.cluster.stop().catch(() => undefined);
    await this.redis.stop();
    await this.proxy.close();
  }

  // -------------------------------------------------------------------------------------------
  // Marks

  private async maxSeqs(): Promise<Map<string, number>> {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ room: string; s: string }>(`SELECT room, max(seq) AS s FROM ${this.cluster.schema}.messages GROUP BY room`);
      return new Map(rows.map((r) => [r.room, Number(r.s)]));
    } finally {
      await client.end();
    }
  }

  private async mark(phase: string, quiet: boolean): Promise<number> {
    const nodes = await Promise.all(this.cluster.nodes.map(async (n) => ({ url: n.url, pid: n.proc.pid, metrics: await scrape(n.url) })));
    this.marks.push({ phase, at: Date.now(), quiet, stored: await countStored(this.cluster.schema), nodes });
    return this.marks.length - 1;
  }

  /**
   * Holds the traffic until every send settled and every member holds every message stored since
   * the last mark in its rooms (within `ms`; what it missed before was that fault's failure, and
   * the final invariants report it again), records a mark, and lets the traffic go on.
   */
  async caughtUp(phase: string, ms = 30_000): Promise<number> {
    await this.traffic.hold(ms);
    try {
      if (this.sends.pending > 0) throw new FaultError(`${phase}: ${this.sends.pending} send(s) still unsettled after ${ms} ms`);
      const since = this.lastTop;
      const max = await this.maxSeqs();
      this.lastTop = max;
      const lagging = (): string[] => {
        const out: string[] = [];
        for (const m of this.members) {
          for (const room of m.rooms.keys()) {
            const top = max.get(room) ?? 0;
            if (!m.holds(room, since.get(room) ?? 0, top)) out.push(`${m.name} in ${room}: ${m.last(room)} of ${top}, missing ${this.missing(m, room, since.get(room) ?? 0, top)} (${m.sdk.state})`);
          }
        }
        return out;
      };
      const caught = await waitFor(async () => lagging().length === 0, 'members', ms).then(
        () => true,
        () => false,
      );
      const i = await this.mark(phase, true);
      if (!caught) throw new FaultError(`${phase}: not every member caught up within ${ms} ms: ${lagging().slice(0, 8).join('; ')}`);
      this.log(`${phase}: caught up; ${this.sends.all.length} sent, ${this.marks[i]?.stored} stored`);
      return i;
    } finally {
      this.traffic.go();
    }
  }

  /** The seqs in (after, upTo] a member does not hold, as ranges. */
  private missing(m: Member, room: string, after: number, upTo: number): string {
    const log = m.rooms.get(room);
    if (log === undefined) return 'the room';
    const held = new Set([...log.direct, ...log.filled].map((r) => r.seq));
    const miss: number[] = [];
    for (let s = Math.max(after, log.from) + 1; s <= upTo; s++) if (!held.has(s)) miss.push(s);
    return ranges(miss);
  }

  private async allReady(ms = 30_000): Promise<void> {
    await Promise.all(this.cluster.nodes.map((n) => this.cluster.ready(n, ms)));
  }

  private async allUnready(ms = 15_000): Promise<void> {
    await Promise.all(this.cluster.nodes.map((n) => waitFor(async () => (await fetch(`${n.url}/readyz`)).status === 503, `${n.url} not ready`, ms)));
  }

  /** Waits until every member of each room holds what was acked in it so far; the laggards if not within ms. */
  private async deliveredWithin(ms: number, filter: (m: Member) => boolean = () => true): Promise<string[]> {
    const top = new Map<string, number>();
    for (const s of this.sends.acked()) top.set(s.room, Math.max(top.get(s.room) ?? 0, s.seq ?? 0));
    const lagging = (): string[] => {
      const out: string[] = [];
      for (const m of this.members.filter(filter)) {
        for (const room of m.rooms.keys()) {
          const seq = top.get(room) ?? 0;
          if (seq > (m.rooms.get(room)?.from ?? 0) && !m.has(room, seq)) out.push(`${m.name} in ${room}: ${m.last(room)} of ${seq}`);
        }
      }
      return out;
    };
    try {
      await waitFor(async () => lagging().length === 0, 'delivery', ms);
      return [];
    } catch {
      return lagging();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  /** kill -9 of node `i` mid-traffic, restarted on its port: its clients fail over and miss nothing. */
  async killNode(i = 2): Promise<void> {
    const node = this.cluster.nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    await sleep(1500);
    await node.kill('SIGKILL');
    this.log(`kill -9 of node ${i + 1}`);
    await sleep(1500);
    const again = await this.cluster.restart(node);
    await this.cluster.ready(again, 30_000);
    await this.caughtUp(`kill -9 of node ${i + 1}`);
  }

  /**
   * Redis killed for `ms` under traffic, then started again on its port. While it is down, every
   * member must still get what was acked (the broker is not needed for delivery): waited for
   * within `deliverMs`.
   */
  async redisOutage(ms = 5000, deliverMs = 15_000): Promise<void> {
    const before = this.marks.length - 1;
    const problems: string[] = [];
    let upAt = 0;
    const downAt = Date.now();
    await this.redis.kill();
    this.log('Redis killed');
    try {
      await this.allUnready();
      await sleep(Math.min(1000, ms));
      await this.mark('Redis down', false);
      const lagging = await this.deliveredWithin(deliverMs);
      if (lagging.length > 0) problems.push(`while Redis was down, not delivered within ${deliverMs} ms: ${lagging.slice(0, 6).join('; ')}`);
      await sleep(Math.max(0, ms - 1000));
    } finally {
      await this.redis.start();
      upAt = Date.now();
      this.log('Redis started');
    }
    await this.allReady();
    await this.caughtUp('Redis back').catch((err: unknown) => problems.push(String(err)));
    this.windows.push({ kind: 'redis', downAt, upAt, before, after: this.marks.length - 1 });
    if (problems.length > 0) throw new FaultError(problems.join('\n'));
  }

  /**
   * D1: a node started while Redis is down; two clients on it (only on it) open a room there
   * during the outage; Redis comes back; what members on other nodes send afterwards must reach
   * them (within `deliverMs`) although nothing is sent from node 4 itself.
   *
   * Node 4 keeps its tickets (and ticket limit) in memory: with Redis tickets no socket can open
   * anywhere while Redis is down, by design; the SDK mints each ticket on the node it connects to.
   */
  async nodeDuringOutage(deliverMs = 15_000): Promise<void> {
    await this.redis.kill();
    this.log('Redis killed (D1)');
    const locals: Member[] = [];
    let failed: string | undefined;
    try {
      await this.allUnready();
      const node = await this.cluster.add({ PARLEY_TICKETS: 'memory', PARLEY_RATE_LIMITER: 'memory', PARLEY_THROTTLE: 'memory' });
      try {
        await this.cluster.listening(node, 30_000);
      } catch {
        failed = `D1: a node started while Redis is down did not come up; its output:\n${node.output().slice(-3000)}`;
        await node.kill('SIGKILL');
        this.cluster.nodes.splice(this.cluster.nodes.indexOf(node), 1);
      }
      if (failed === undefined) {
        this.d1Node = node;
        for (const [k, acct] of this.d1Accounts.entries()) {
          const m = await this.newMember(`d1p${k + 1}`, [node.url], acct);
          await m.join(ROOM_D1);
          locals.push(m);
        }
        this.log('node 4 started while Redis is down; its members joined');
      }
    } finally {
      await this.redis.start();
      this.log('Redis started (D1)');
    }
    await this.allReady();
    if (failed !== undefined) throw new FaultError(failed);
    // Messages from the other nodes only.
    await this.traffic.hold();
    const from = this.senders.find((s) => s.rooms.includes(ROOM_D1));
    if (from === undefined) throw new Error('no sender in the D1 room');
    const recs: SendRecord[] = [];
    for (let k = 0; k < 3; k++) recs.push(this.sends.send(from.member, from.user, ROOM_D1));
    await this.sends.settle(15_000);
    const top = Math.max(...recs.map((r) => r.seq ?? 0));
    let problem: string | undefined;
    try {
      await waitFor(async () => locals.every((m) => m.has(ROOM_D1, top)), 'node 4 members', deliverMs);
    } catch {
      problem = `D1: members on node 4 (room first opened there during the outage) did not get ${ROOM_D1}#${top} from another node within ${deliverMs} ms: ${locals.map((m) => `${m.name} at ${m.last(ROOM_D1)}`).join(', ')}`;
    }
    this.traffic.go();
    // From now on they send too.
    for (const m of locals) this.addSender({ member: m, user: this.userOf(m), rooms: [ROOM_D1] });
    if (problem !== undefined) throw new FaultError(problem);
    await this.caughtUp('node 4 started during an outage');
  }

  private addSender(s: Sender): void {
    this.senders.push(s);
    this.traffic.add(s);
  }

  /**
   * D3: one publication lost while both nodes stay subscribed: node 1's command connection is
   * killed (CLIENT KILL) and a message is sent from node 1 at once, into a room nobody else
   * writes to. Our own subscriber on the room's channel tells whether it went out; if it did
   * (the reconnect won the race), again, up to `tries` times. The member on node 2 must get the
   * lost one with no further message sent (within `deliverMs`).
   */
  async lostPublication(tries = 5, deliverMs = 15_000): Promise<LostPublication> {
    const quiet = this.quiet;
    const node1 = this.cluster.nodes[0];
    if (quiet === undefined || node1 === undefined) throw new Error('not set up');
    const { q1, q2 } = quiet;
    const send = async (): Promise<{ text: string; seq: number }> => {
      const rec = this.sends.send(q1, this.userOf(q1), ROOM_QUIET);
      await waitFor(async () => rec.state !== 'pending', 'the quiet send', 15_000);
      if (rec.state !== 'acked' || rec.seq === undefined) throw new FaultError(`D3: the send was refused: ${rec.code}`);
      return { text: rec.text, seq: rec.seq };
    };
    const delivered = (seq: number) => waitFor(async () => q2.has(ROOM_QUIET, seq), 'the published message', deliverMs);
    let lost: LostPublication;
    try {
      lost = await losePublication(this.redis.url, node1, `${this.cluster.prefix}room:${ROOM_QUIET}`, send, delivered, tries);
    } catch (err) {
      throw new FaultError(`D3: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.log(`D3: publication of ${ROOM_QUIET}#${lost.seq} lost on try ${lost.tries} (command connection found by ${lost.by})`);
    const problems: string[] = [];
    await delivered(lost.seq).catch(() => problems.push(`D3: the lost publication ${ROOM_QUIET}#${lost.seq} did not reach node 2 within ${deliverMs} ms with no further message (q2 at ${q2.last(ROOM_QUIET)})`));
    // (A catch-up that fails only on the lost message says nothing new: its mark is what matters.)
    await this.caughtUp('lost publication').catch((err: unknown) => {
      if (problems.length === 0) problems.push(String(err));
    });
    if (problems.length > 0) throw new FaultError(problems.join('\n'));
    return lost;
  }

  /** Postgres unreachable (the proxy cuts every connection) for `ms` under traffic: sends refused `unavailable` and retried. */
  async postgresCut(ms = 3000): Promise<{ unavailable: number }> {
    const before = this.marks.length - 1;
    const errorsBefore = this.wireErrors('unavailable');
    let upAt = 0;
    const downAt = Date.now();
    this.proxy.cut();
    this.log('Postgres cut');
    try {
      await sleep(ms);
    } finally {
      this.proxy.restore();
      upAt = Date.now();
      this.log('Postgres restored');
    }
    await this.allReady();
    const problems: string[] = [];
    await this.caughtUp('Postgres back').catch((err: unknown) => problems.push(String(err)));
    this.windows.push({ kind: 'postgres', downAt, upAt, before, after: this.marks.length - 1 });
    const unavailable = this.wireErrors('unavailable') - errorsBefore;
    if (unavailable === 0) problems.push('Postgres cut: no send was answered `unavailable`: did the fault happen?');
    if (problems.length > 0) throw new FaultError(problems.join('\n'));
    return { unavailable };
  }

  /** SIGTERM of node `i` under traffic (it must exit 0), restarted on its port. */
  async sigterm(i = 1): Promise<{ shuttingDown: number }> {
    const node = this.cluster.nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    const before = this.wireErrors('shutting_down');
    await sleep(1000);
    const code = await node.kill('SIGTERM');
    this.log(`SIGTERM of node ${i + 1}: exit ${code}`);
    const again = await this.cluster.restart(node);
    await this.cluster.ready(again, 30_000);
    const problems: string[] = [];
    if (code !== 0) problems.push(`SIGTERM: node ${i + 1} exited with ${code}; output:\n${node.output().slice(-1500)}`);
    await this.caughtUp(`SIGTERM of node ${i + 1}`).catch((err: unknown) => problems.push(String(err)));
    if (problems.length > 0) throw new FaultError(problems.join('\n'));
    return { shuttingDown: this.wireErrors('shutting_down') - before };
  }

  /** A member stops reading its socket for `ms` while the others send: it is closed, and recovers everything by resume. */
  async stalledReader(ms = 8000, closeMs = 20_000): Promise<{ code: number | undefined }> {
    const r = this.reader;
    if (r === undefined) throw new Error('not set up');
    const closes = r.wire.closes.length;
    r.wire.pause();
    this.log(`${r.name} stops reading`);
    await sleep(ms);
    r.wire.resume();
    let code: number | undefined;
    try {
      await waitFor(async () => r.wire.closes.length > closes, 'the close', closeMs);
      code = r.wire.closes[closes];
    } catch {
      // reported below, once caught up (or not)
    }
    this.log(`${r.name} reads again; closed with ${code}`);
    const problems: string[] = [];
    if (code === undefined) problems.push(`stalled reader: ${r.name} was not closed after ${ms} ms without reading`);
    else if (![4000, 4001, 1006].includes(code)) problems.push(`stalled reader: closed with ${code}, not 4000, 4001 or 1006`);
    await this.caughtUp('stalled reader').catch((err: unknown) => problems.push(String(err)));
    if (problems.length > 0) throw new FaultError(problems.join('\n'));
    return { code };
  }

  private wireErrors(code: string): number {
    let n = 0;
    for (const m of this.members) for (const f of m.wire.frames) if (f.type === 'error' && f.code === code) n++;
    return n;
  }

  // -------------------------------------------------------------------------------------------
  // The end

  /** Stops the traffic, lets everything settle, and checks the store and every member. */
  async invariants(): Promise<InvariantReport> {
    await this.traffic.stop();
    try {
      await this.caughtUp('end');
    } catch (err) {
      this.log(String(err));
    }
    for (const m of this.members) await m.settled();
    return check(await readStored(this.cluster.schema), this.sends.all, this.members);
  }

  /**
   * The metrics against what happened: at every quiet mark the broker is up on every node; while
   * Redis was down it was down on every node; between two quiet marks with the same processes,
   * the nodes' parley_messages_stored_total grew by what the store grew by; across a Redis outage
   * every node that lived through it counted gap fills (parley_gap_fills_total); across a Postgres
   * cut, store errors (parley_store_errors_total).
   */
  metricsViolations(): string[] {
    const out: string[] = [];
    for (const m of this.marks) {
      for (const n of m.nodes) {
        if (n.metrics === undefined) {
          out.push(`GET ${n.url}/metrics did not answer 200 (at "${m.phase}"): the metrics cannot be checked`);
          return out;
        }
        const up = n.metrics.total('parley_broker_up');
        if (m.quiet && up !== 1) out.push(`${n.url} at "${m.phase}": parley_broker_up ${up}, expected 1`);
        if (m.phase === 'Redis down' && up !== 0) out.push(`${n.url} while Redis was down: parley_broker_up ${up}, expected 0`);
      }
    }
    const quiet = this.marks.map((m, i) => ({ m, i })).filter(({ m }) => m.quiet);
    for (let k = 1; k < quiet.length; k++) {
      const a = quiet[k - 1]?.m;
      const b = quiet[k]?.m;
      if (a === undefined || b === undefined) continue;
      const pids = (m: Mark) => m.nodes.map((n) => n.pid).join(',');
      if (pids(a) !== pids(b)) continue; // a node restarted: its counts started again
      const sum = (m: Mark) => m.nodes.reduce((s, n) => s + (n.metrics?.total('parley_messages_stored_total') ?? 0), 0);
      if (sum(b) - sum(a) !== b.stored - a.stored) out.push(`"${a.phase}" → "${b.phase}": parley_messages_stored_total grew by ${sum(b) - sum(a)}, the store by ${b.stored - a.stored}`);
    }
    for (const w of this.windows) {
      const a = this.marks[w.before];
      const b = this.marks[w.after];
      if (a === undefined || b === undefined) continue;
      const name = w.kind === 'redis' ? 'parley_gap_fills_total' : 'parley_store_errors_total';
      const expected = w.kind === 'redis' ? this.nodesThatFilled(w) : this.nodesThatRefused(a.at, b.at);
      for (const nb of b.nodes) {
        const na = a.nodes.find((n) => n.url === nb.url && n.pid === nb.pid);
        if (na === undefined || !expected.has(nb.url)) continue;
        const grew = (nb.metrics?.total(name) ?? 0) - (na.metrics?.total(name) ?? 0);
        if (grew <= 0) out.push(`${nb.url}: ${name} did not grow across the ${w.kind === 'redis' ? 'Redis outage' : 'Postgres cut'} ("${a.phase}" → "${b.phase}"), though ${w.kind === 'redis' ? 'its members got messages sent on other nodes while Redis was down' : 'it answered sends `unavailable`'}`);
      }
      if (expected.size === 0) out.push(`${w.kind === 'redis' ? 'Redis outage' : 'Postgres cut'} ("${a.phase}" → "${b.phase}"): no node was seen ${w.kind === 'redis' ? 'delivering a message from another node' : 'refusing a send'}: nothing to hold the metrics to`);
    }
    return out;
  }

  /** Nodes that answered a send `unavailable` between two times (those had a store write fail). */
  private nodesThatRefused(from: number, to: number): Set<string> {
    const out = new Set<string>();
    for (const m of this.members) {
      for (const f of m.wire.frames) {
        if (f.type !== 'error' || f.code !== 'unavailable' || f.ref === undefined || !m.wire.isSend(f.ref) || f.at < from || f.at > to) continue;
        const origin = m.wire.origins[f.conn];
        if (origin !== undefined) out.add(origin);
      }
    }
    return out;
  }

  /**
   * Nodes that delivered a message acked on another node while Redis was down: no broker could
   * have brought it, so they read it from the store (a gap fill).
   */
  private nodesThatFilled(w: Window): Set<string> {
    const ackedOn = new Map<string, string>();
    for (const m of this.members) {
      for (const f of m.wire.frames) {
        if (f.type !== 'ack' || f.at < w.downAt + 500 || f.at > w.upAt) continue; // (a publication in flight at the kill may still have gone out)
        const origin = m.wire.origins[f.conn];
        if (origin !== undefined) ackedOn.set(`${f.room}\u0000${f.seq}`, origin);
      }
    }
    const out = new Set<string>();
    for (const m of this.members) {
      for (const f of m.wire.frames) {
        if (f.type !== 'new_message' || f.at < w.downAt) continue;
        const origin = m.wire.origins[f.conn];
        const sender = ackedOn.get(`${f.room}\u0000${f.seq}`);
        if (origin !== undefined && sender !== undefined && sender !== origin) out.add(origin);
      }
    }
    return out;
  }

  /** The D1 node, once started. */
  get nodeFour(): Node | undefined {
    return this.d1Node;
  }

  /** Acks that came before their own new_message, by the mark that followed them (the fault they happened in). */
  ackOrderByPhase(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of this.members) {
      for (const f of m.wire.ackOrderViolations()) {
        const phase = this.marks.find((k) => k.quiet && k.at >= f.at)?.phase ?? 'end';
        out[phase] = (out[phase] ?? 0) + 1;
      }
    }
    return out;
  }

  /** One line for the report: sends, outcomes, acks before their message by fault. */
  summary(): string {
    const refused = new Map<string, number>();
    for (const s of this.sends.all) if (s.state === 'refused') refused.set(s.code ?? '?', (refused.get(s.code ?? '?') ?? 0) + 1);
    return `${this.sends.all.length} sent, ${this.sends.acked().length} acked, refused ${JSON.stringify(Object.fromEntries(refused))}, ${this.members.length} members; acks before their message, by the fault they came in: ${JSON.stringify(this.ackOrderByPhase())}`;
  }
}
