/**
 * SDK clients for fault tests and the fault benchmark: a Member follows rooms and records what
 * reached the app (each `new_message` with its arrival time, each `gap`), optionally filling a
 * gap from history as an app should; Sends records every send's outcome (acked with its seq, or
 * refused with its code, or still pending). The SDK (`@parley/client`) is given by the caller
 * (this package cannot depend on it): anything with ParleyClient's shape fits `Sdk`.
 */
import { type ChatMessage, isRoomEvent, type TimelineItem } from '@parley/protocol';
import { Wire } from './wire.js';

/** The part of ParleyClient a Member uses. */
export interface Sdk {
  on(event: 'new_message', fn: (m: ChatMessage) => void): () => void;
  on(event: 'member_joined' | 'room_created', fn: (e: { room: string; seq: number }) => void): () => void;
  on(event: 'gap', fn: (g: { room: string; seq: number }) => void): () => void;
  connect(): Promise<void>;
  join(room: string): Promise<{ room: string; seq: number }>;
  send(room: string, message: string): Promise<{ room: string; seq: number }>;
  history(room: string, opts?: { before?: number; limit?: number }): Promise<TimelineItem[]>;
  close(): void;
  readonly state: string;
}

/** The code of a rejection (ParleyError.code), read without a cast. */
export function codeOf(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return `uncoded: ${String(err)}`;
}

export interface Received {
  seq: number;
  text: string;
  at: number;
}

/** What one member saw of one room. */
export interface RoomLog {
  room: string;
  /** The room's seq when the join was answered: the member expects every message after it. */
  from: number;
  /** Messages that reached the app, in arrival order. */
  direct: Received[];
  /** Messages read from history to fill a gap. */
  filled: Received[];
  /** Seqs of the room events (joins) that reached the app or history: they hold no message. */
  events: Set<number>;
  /** `gap` events (resume answered recovered: false). */
  gaps: number;
}

export interface MemberOptions {
  name: string;
  /** Builds the SDK client: give it `wire.WebSocket` as its WebSocket and no rooms (`rooms: []`). */
  client: (wire: Wire) => Sdk;
  /** Fill a gap from history (as the page does). Default true; the benchmark measures without. */
  fillGaps?: boolean;
}

export class Member {
  readonly name: string;
  readonly wire = new Wire();
  readonly sdk: Sdk;
  readonly rooms = new Map<string, RoomLog>();
  private readonly fills: Promise<void>[] = [];
  /** Failed history fills (the store may be down): retried until they succeed or close(). */
  fillErrors = 0;
  private closed = false;

  constructor(options: MemberOptions) {
    this.name = options.name;
    this.sdk = options.client(this.wire);
    this.sdk.on('new_message', (m) => {
      const log = this.rooms.get(m.room);
      if (log !== undefined) log.direct.push({ seq: m.seq, text: m.message, at: Date.now() });
    });
    const event = (e: { room: string; seq: number }) => this.rooms.get(e.room)?.events.add(e.seq);
    this.sdk.on('member_joined', event);
    this.sdk.on('room_created', event);
    this.sdk.on('gap', (g) => {
      const log = this.rooms.get(g.room);
      if (log === undefined) return;
      log.gaps++;
      if (options.fillGaps ?? true) this.fills.push(this.fill(log, g.seq));
    });
  }

  async join(...rooms: string[]): Promise<void> {
    for (const room of rooms) {
      const log: RoomLog = { room, from: 0, direct: [], filled: [], events: new Set(), gaps: 0 };
      this.rooms.set(room, log);
      log.from = (await this.sdk.join(room)).seq;
    }
  }

  /** Highest seq this member has of a room (direct or filled), or its join position. */
  last(room: string): number {
    const log = this.rooms.get(room);
    if (log === undefined) return 0;
    let top = log.from;
    for (const r of log.direct) top = Math.max(top, r.seq);
    for (const r of log.filled) top = Math.max(top, r.seq);
    return top;
  }

  /** Whether the member holds every seq from its join to `seq` (directly or filled). */
  has(room: string, seq: number): boolean {
    return this.holds(room, 0, seq);
  }

  /** Whether the member holds every seq in (after, upTo] that came after its join. */
  holds(room: string, after: number, upTo: number): boolean {
    const log = this.rooms.get(room);
    if (log === undefined) return false;
    const held = new Set([...log.direct, ...log.filled].map((r) => r.seq));
    for (let s = Math.max(after, log.from) + 1; s <= upTo; s++) if (!held.has(s) && !log.events.has(s)) return false;
    return true;
  }

  /** Waits for the history fills started so far. */
  async settled(): Promise<void> {
    while (this.fills.length > 0) await this.fills.shift();
  }

  close(): void {
    this.closed = true;
    this.sdk.close();
  }

  /**
   * Reads from history every seq in (from, upTo] the app did not get (the SDK never delivers
   * them now: its position moved to upTo), newest page first, down to the lowest hole.
   */
  private async fill(log: RoomLog, upTo: number): Promise<void> {
    const held = new Set([...log.direct, ...log.filled].map((r) => r.seq));
    for (const s of log.events) held.add(s);
    let lowest: number | undefined;
    for (let s = log.from + 1; s <= upTo; s++) {
      if (!held.has(s)) {
        lowest = s;
        break;
      }
    }
    if (lowest === undefined) return;
    let before = upTo + 1;
    while (before > lowest && !this.closed) {
      let page: TimelineItem[];
      try {
        page = await this.sdk.history(log.room, { before, limit: 100 });
      } catch {
        this.fillErrors++;
        await sleep(500);
        continue;
      }
      if (page.length === 0) break; // pruned: nothing older
      for (const m of page) {
        if (m.seq > log.from && !held.has(m.seq)) {
          held.add(m.seq);
          if (isRoomEvent(m)) log.events.add(m.seq);
          else log.filled.push({ seq: m.seq, text: m.message, at: Date.now() });
        }
      }
      before = Math.min(...page.map((m) => m.seq));
    }
  }
}

export type SendState = 'pending' | 'acked' | 'refused';

export interface SendRecord {
  sender: string;
  /** The user name the sender is logged in as (the store's `sender`). */
  user: string;
  room: string;
  text: string;
  state: SendState;
  seq?: number;
  code?: string;
  sentAt: number;
  settledAt?: number;
}

/** Every send of a run and its outcome. Texts are unique: `<sender>#<n>`. */
export class Sends {
  readonly all: SendRecord[] = [];
  private readonly pendingSet = new Set<Promise<void>>();
  private n = 0;

  /** Sends `text` (default a fresh unique one) from `m`, logged in as `user`, into `room`. */
  send(m: Member, user: string, room: string, text = `${m.name}#${++this.n}`): SendRecord {
    const rec: SendRecord = { sender: m.name, user, room, text, state: 'pending', sentAt: Date.now() };
    this.all.push(rec);
    const p = m.sdk.send(room, text).then(
      (a) => {
        rec.state = 'acked';
        rec.seq = a.seq;
        rec.settledAt = Date.now();
      },
      (err: unknown) => {
        rec.state = 'refused';
        rec.code = codeOf(err);
        rec.settledAt = Date.now();
      },
    );
    this.pendingSet.add(p);
    void p.finally(() => this.pendingSet.delete(p));
    return rec;
  }

  /** How many sends are not settled yet. */
  get pending(): number {
    return this.pendingSet.size;
  }

  /** Resolves once every send made so far is settled, or after `ms` (then some stay pending). */
  async settle(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.pendingSet.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.all([...this.pendingSet]), new Promise((r) => setTimeout(r, 100))]);
    }
  }

  acked(): SendRecord[] {
    return this.all.filter((s) => s.state === 'acked');
  }
}

export interface Sender {
  member: Member;
  user: string;
  /** Rooms it sends to, in turn. */
  rooms: string[];
}

/**
 * Steady traffic: every sender sends one message every `intervalMs` (to its rooms in turn)
 * until stop(). `hold()` lets the sends in flight settle and stops new ones until `go()`, so a
 * test can look at a quiet cluster (the metrics against the store) between faults.
 */
export class Traffic {
  private running = false;
  private held = false;
  private loops: Promise<void>[] = [];

  constructor(
    readonly sends: Sends,
    /** Read at start(): senders pushed later are started with add(). */
    private readonly senders: readonly Sender[],
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.running = true;
    this.loops = this.senders.map((s, i) => this.loop(s, i));
  }

  /** One more sender, from now on (the caller has put it in the senders' list too, or not). */
  add(s: Sender): void {
    if (this.running) this.loops.push(this.loop(s, 0));
  }

  /** New sends stop; resolves once those in flight settled (or after `ms`). */
  async hold(ms = 30_000): Promise<void> {
    this.held = true;
    await this.sends.settle(ms);
  }

  go(): void {
    this.held = false;
  }

  async stop(settleMs = 30_000): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await this.sends.settle(settleMs);
  }

  private async loop(s: Sender, offset: number): Promise<void> {
    // Spread the senders over the interval.
    await sleep((offset * this.intervalMs) / Math.max(1, this.senders.length));
    let turn = 0;
    while (this.running) {
      if (!this.held) {
        const room = s.rooms[turn++ % s.rooms.length];
        if (room !== undefined) this.sends.send(s.member, s.user, room);
      }
      await sleep(this.intervalMs);
    }
  }
}

/** The password of every account made by `account`. */
export const PASSWORD = 'correct horse battery';

export interface Account {
  name: string;
  token: string;
}

/** Registers `name` on the node at `url` (POST /register) and logs in (POST /login) for a token. */
export async function account(url: string, name: string): Promise<Account> {
  const post = (path: string) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: name, password: PASSWORD }) });
  const reg = await post('/register');
  if (reg.status !== 201) throw new Error(`register ${name}: ${reg.status} ${await reg.text()}`);
  const res = await post('/login');
  if (res.status !== 200) throw new Error(`login ${name}: ${res.status}`);
  const body: unknown = await res.json();
  if (typeof body !== 'object' || body === null || !('token' in body) || typeof body.token !== 'string') throw new Error(`login ${name}: no token`);
  return { name, token: body.token };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
