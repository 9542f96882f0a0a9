/**
 * SQLite store (better-sqlite3): the embedded default. One file in dataDir, WAL journal, so
 * readers never block the writer. better-sqlite3 is synchronous; every call here is short and
 * bounded (indexed lookups, one transaction per batch of messages), which keeps the event loop
 * free. Several Parley processes may share the file on one machine: seqs come from a row
 * updated inside each write transaction, so they stay gap-free and unique.
 *
 * Durability: `synchronous = FULL` by default, so a commit (an ack) survives a power loss: the
 * write-ahead log is synced at every commit. `durability: 'normal'` sets NORMAL: the log is
 * synced only at checkpoints, so the last commits before a power loss (not a process crash) may
 * be lost, though the database stays consistent.
 *
 * Health (store/health.ts): a write failing with SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR,
 * SQLITE_CANTOPEN, SQLITE_BUSY (past busy_timeout)… makes the store unhealthy until a write
 * succeeds; the probe upserts the one row of `health` and, inside a savepoint it rolls back,
 * allocates two fresh pages, so a database that cannot grow is not reported healthy.
 */
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { ChatMessage, TimelineItem } from '@parley/protocol';
import type { CheckpointerData, CheckpointerError } from './checkpointer.js';
import { StoreHealth, type StoreFailure } from './health.js';
import { foldRoomNames, type Sql } from './rooms-migration.js';
import { itemOf, type MembershipOp, type MembershipOutcome, type StreamRow } from './membership.js';
import { ROOMS_MIGRATION, sqliteRooms } from './sqlite-rooms.js';
import { type Access, type Appended, type HistoryQuery, type MemberRecord, type MembershipRecord, type PageQuery, type PublicRoom, type NewMessage, type PruneQuery, type SessionRecord, type Store, StoreError, type UserRecord, type UserRemoval } from './store.js';
import { codeOf, messageOf } from '../failure.js';

/** Migrations, applied in order; the index + 1 is the schema version kept in `user_version`. */
const MIGRATIONS: readonly (string | ((db: Sql) => Promise<void>))[] = [
  `CREATE TABLE users (
     name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
     password_hash TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE sessions (
     token_hash TEXT NOT NULL PRIMARY KEY,
     user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX sessions_user ON sessions(user_name);
   CREATE INDEX sessions_expiry ON sessions(expires_at);
   CREATE TABLE rooms (
     name TEXT NOT NULL PRIMARY KEY,
     last_seq INTEGER NOT NULL
   );
   CREATE TABLE messages (
     room TEXT NOT NULL,
     seq INTEGER NOT NULL,
     sender TEXT NOT NULL,
     body TEXT NOT NULL,
     sent TEXT NOT NULL,
     at INTEGER NOT NULL,
     PRIMARY KEY (room, seq)
   ) WITHOUT ROWID;
   CREATE INDEX messages_at ON messages(at);
   CREATE TABLE dedupe (
     user_name TEXT NOT NULL,
     ref TEXT NOT NULL,
     room TEXT NOT NULL,
     seq INTEGER NOT NULL,
     at INTEGER NOT NULL,
     PRIMARY KEY (user_name, ref)
   ) WITHOUT ROWID;
   CREATE INDEX dedupe_at ON dedupe(at);`,
  // 2: removed accounts keep their name (reserved) and are recorded for running servers.
  `ALTER TABLE users ADD COLUMN removed_at INTEGER;
   CREATE TABLE user_removals (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     user_name TEXT NOT NULL,
     at INTEGER NOT NULL
   );
   CREATE INDEX user_removals_at ON user_removals(at);`,
  // 3: room names are case-insensitive (rooms-migration.ts).
  foldRoomNames,
  // 4: the write probe's one row (store/health.ts); `pad` is only ever written in a savepoint rolled back.
  `CREATE TABLE IF NOT EXISTS health (
     id INTEGER PRIMARY KEY,
     at INTEGER NOT NULL,
     pad BLOB
   );`,
  // 5: rooms with members (store/membership.ts, sqlite-rooms.ts).
  ROOMS_MIGRATION,
];

/** A migration's view of the database (rooms-migration.ts). */
const sqlOf = (db: Database.Database): Sql => ({
  all: async <R>(sql: string, params: unknown[] = []) => db.prepare(sql).all(...params) as R[],
  run: async (sql: string, params: unknown[] = []) => {
    db.prepare(sql).run(...params);
  },
});

type MessageRow = StreamRow;

/**
 * SQLite's primary result codes that say the database cannot write now (the disk, the file, a
 * lock), not that a statement or a value was wrong: the store is unhealthy until a write works.
 */
const BACKEND_CODES = new Set(['SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_IOERR', 'SQLITE_CANTOPEN', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_PERM', 'SQLITE_PROTOCOL', 'SQLITE_NOMEM', 'SQLITE_NOLFS', 'SQLITE_AUTH']);

/** The SQLite code of a failure that means the database cannot write (see BACKEND_CODES), else undefined. */
export function sqliteBackend(err: unknown): string | undefined {
  const code = codeOf(err);
  if (typeof code !== 'string') return undefined;
  const primary = /^SQLITE_[A-Z]+/.exec(code)?.[0];
  return primary !== undefined && BACKEND_CODES.has(primary) ? code : undefined;
}

function wrap(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = codeOf(err);
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') {
    return new StoreError('conflict', `${what}: already exists`, { cause: err });
  }
  // A value past SQLite's limits, or one a column refuses: this data cannot be stored.
  if (code === 'SQLITE_TOOBIG' || code === 'SQLITE_MISMATCH' || code === 'SQLITE_CONSTRAINT_NOTNULL' || code === 'SQLITE_CONSTRAINT_CHECK') {
    return new StoreError('invalid', `${what}: ${messageOf(err)}`, { cause: err });
  }
  return new StoreError('unavailable', `${what}: ${messageOf(err)}`, { cause: err, backend: sqliteBackend(err) });
}

/** How often the checkpointer copies the write-ahead log into the database file, ms. */
const CHECKPOINT_INTERVAL_MS = 200;
/**
 * WAL pages after which a commit checkpoints by itself (SQLite's default is 1,000). Only a
 * safety net: the checkpointer thread normally keeps the log far below it.
 */
const WAL_AUTOCHECKPOINT_PAGES = 10_000;

export interface SqliteStoreOptions {
  /** `full` (default): every commit is synced (synchronous = FULL); `normal`: synchronous = NORMAL (see the module doc). */
  durability?: 'full' | 'normal' | undefined;
}

export class SqliteStore implements Store {
  readonly driver = 'sqlite';
  private db: Database.Database | undefined;
  private stmts: ReturnType<SqliteStore['prepare']> | undefined;
  private roomsOf: ReturnType<typeof sqliteRooms> | undefined;
  private checkpointer: Worker | undefined;
  private probeWrite: (() => void) | undefined;
  private readonly health = new StoreHealth(
    async () => {
      const probe = this.probeWrite;
      if (probe === undefined) throw new StoreError('unavailable', 'sqlite store is not open');
      probe();
    },
    sqliteBackend,
    (healthy) => this.onHealth?.(healthy),
  );
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;

  get healthy(): boolean {
    return this.db !== undefined && this.health.healthy;
  }

  get failure(): StoreFailure | undefined {
    return this.db === undefined ? undefined : this.health.failure;
  }

  /** @param file path of the database file, or ':memory:' */
  constructor(
    private readonly file: string,
    private readonly options: SqliteStoreOptions = {},
  ) {}

  async init(): Promise<void> {
    if (this.file !== ':memory:') mkdirSync(dirname(this.file), { recursive: true });
    const db = new Database(this.file);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${this.options.durability === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      const migration = MIGRATIONS[v] as string | ((db: Sql) => Promise<void>);
      // One transaction per migration; nothing else uses the database while it opens.
      db.exec('BEGIN IMMEDIATE');
      try {
        if (typeof migration === 'string') db.exec(migration);
        else await migration(sqlOf(db));
        db.pragma(`user_version = ${v + 1}`);
        db.exec('COMMIT');
      } catch (err) {
        db.exec('ROLLBACK');
        db.close();
        throw wrap(err, `sqlite migration ${v + 1}`);
      }
    }
    this.db = db;
    this.stmts = this.prepare(db);
    this.roomsOf = sqliteRooms(db);
    this.probeWrite = probeOf(db);
    await this.health.start();
    if (this.file !== ':memory:') {
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      const data: CheckpointerData = { file: this.file, intervalMs: CHECKPOINT_INTERVAL_MS };
      this.checkpointer = new Worker(new URL('./checkpointer.js', import.meta.url), { workerData: data });
      // A failing checkpointer is reported; the writer's auto-checkpoint still bounds the log.
      this.checkpointer.on('error', (err) => this.onBackgroundError?.(err));
      this.checkpointer.on('message', (m: CheckpointerError) => this.onBackgroundError?.(Object.assign(new Error(m.message), { code: m.code })));
      this.checkpointer.unref();
    }
  }

  private prepare(db: Database.Database) {
    const s = {
      createUser: db.prepare<[string, string, number]>('INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?)'),
      getUser: db.prepare<[string], { name: string; password_hash: string; created_at: number }>(
        'SELECT name, password_hash, created_at FROM users WHERE name = ? AND removed_at IS NULL',
      ),
      nameTaken: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM users WHERE name = ?'),
      listUsers: db.prepare<[], { name: string; password_hash: string; created_at: number }>(
        'SELECT name, password_hash, created_at FROM users WHERE removed_at IS NULL ORDER BY name COLLATE NOCASE',
      ),
      removeUser: db.prepare<[number, string]>("UPDATE users SET removed_at = ?, password_hash = '' WHERE name = ? AND removed_at IS NULL"),
      deleteUserSessions: db.prepare<[string]>('DELETE FROM sessions WHERE user_name = (SELECT name FROM users WHERE name = ?)'),
      deleteUserMemberships: db.prepare<[string]>('DELETE FROM members WHERE user_key = lower(?)'),
      recordRemoval: db.prepare<[string, number]>('INSERT INTO user_removals (user_name, at) VALUES ((SELECT name FROM users WHERE name = ?), ?)'),
      removalsSince: db.prepare<[number], { id: number; user_name: string; at: number }>('SELECT id, user_name, at FROM user_removals WHERE at >= ? ORDER BY id'),
      createSession: db.prepare<[string, string, number]>('INSERT INTO sessions (token_hash, user_name, expires_at) VALUES (?, ?, ?)'),
      getSession: db.prepare<[string, number], { token_hash: string; user_name: string; expires_at: number }>(
        'SELECT token_hash, user_name, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?',
      ),
      deleteSession: db.prepare<[string]>('DELETE FROM sessions WHERE token_hash = ?'),
      deleteExpired: db.prepare<[number]>('DELETE FROM sessions WHERE expires_at <= ?'),
      // A room's next seq is an UPDATE and a read of the row (a new room: an INSERT of seq 1).
      // One upsert with RETURNING does the same but costs about 10 µs against 1.5 µs here.
      bumpSeq: db.prepare<[string]>('UPDATE rooms SET last_seq = last_seq + 1 WHERE name = ?'),
      createRoom: db.prepare<[string]>('INSERT INTO rooms (name, last_seq) VALUES (?, 1)'),
      insertMessage: db.prepare<[string, number, string, string, string, number]>('INSERT INTO messages (room, seq, sender, body, sent, at) VALUES (?, ?, ?, ?, ?, ?)'),
      findDedupe: db.prepare<[string, string], { room: string; seq: number }>('SELECT room, seq FROM dedupe WHERE user_name = ? AND ref = ?'),
      insertDedupe: db.prepare<[string, string, string, number, number]>('INSERT INTO dedupe (user_name, ref, room, seq, at) VALUES (?, ?, ?, ?, ?)'),
      after: db.prepare<[string, number, number], MessageRow>('SELECT room, seq, sender, body, sent, kind FROM messages WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?'),
      pruneOld: db.prepare<[number, number]>('DELETE FROM messages WHERE (room, seq) IN (SELECT room, seq FROM messages WHERE at < ? LIMIT ?)'),
      overfull: db.prepare<[{ keep: number }], { room: string; cutoff: number }>(
        'SELECT r.name AS room, r.last_seq - @keep AS cutoff FROM rooms r WHERE EXISTS (SELECT 1 FROM messages m WHERE m.room = r.name AND m.seq <= r.last_seq - @keep)',
      ),
      pruneRoom: db.prepare<[{ room: string; cutoff: number; limit: number }]>(
        'DELETE FROM messages WHERE room = @room AND seq IN (SELECT seq FROM messages WHERE room = @room AND seq <= @cutoff ORDER BY seq LIMIT @limit)',
      ),
      pruneDedupe: db.prepare<[number, number]>('DELETE FROM dedupe WHERE (user_name, ref) IN (SELECT user_name, ref FROM dedupe WHERE at < ? LIMIT ?)'),
      ping: db.prepare('SELECT 1'),
      lastSeq: db.prepare<[string], { last_seq: number }>('SELECT last_seq FROM rooms WHERE name = ?'),
      lastSeqs: db.prepare<[string], { name: string; last_seq: number }>('SELECT r.name, r.last_seq FROM json_each(?) AS j JOIN rooms r ON r.name = j.value'),
      historyLatest: db.prepare<[string, number], MessageRow>('SELECT room, seq, sender, body, sent, kind FROM messages WHERE room = ? ORDER BY seq DESC LIMIT ?'),
      historyBefore: db.prepare<[string, number, number], MessageRow>(
        'SELECT room, seq, sender, body, sent, kind FROM messages WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
      ),
    };
    const nextSeq = (room: string): number => {
      if (s.bumpSeq.run(room).changes > 0) return (s.lastSeq.get(room) as { last_seq: number }).last_seq;
      s.createRoom.run(room);
      return 1;
    };
    // One batch of messages in one transaction (better-sqlite3 wraps it in BEGIN/COMMIT).
    const append = db.transaction((items: readonly NewMessage[], now: number): Appended[] => {
      const out: Appended[] = new Array(items.length);
      for (let i = 0; i < items.length; i++) {
        const m = items[i] as NewMessage;
        if (m.ref !== undefined) {
          const seen = s.findDedupe.get(m.from, m.ref);
          if (seen !== undefined) {
            out[i] = { duplicate: true, message: seen };
            continue;
          }
        }
        const seq = nextSeq(m.room);
        s.insertMessage.run(m.room, seq, m.from, m.message, m.sent, Date.parse(m.sent));
        if (m.ref !== undefined) s.insertDedupe.run(m.from, m.ref, m.room, seq, now);
        out[i] = { duplicate: false, message: { room: m.room, seq, from: m.from, message: m.message, sent: m.sent } };
      }
      return out;
    });
    // A removal: the account is kept as a tombstone (its name reserved), the rest goes at once.
    const remove = db.transaction((name: string, now: number): boolean => {
      if (s.removeUser.run(now, name).changes === 0) return false;
      s.deleteUserSessions.run(name);
      s.deleteUserMemberships.run(name);
      s.recordRemoval.run(name, now);
      return true;
    });
    return { ...s, append, remove };
  }

  /**
   * Test seam: runs a PRAGMA on the store's own connection and returns its value. Some pragmas
   * hold per connection (`max_page_count`, `query_only`), so a test can only reach them here:
   * `store.pragma('max_page_count = 1')` is a full disk, `store.pragma('query_only = 1')` a
   * read-only one. Not for production code.
   */
  pragma(source: string): unknown {
    if (this.db === undefined) throw new StoreError('unavailable', 'sqlite store is not open');
    return this.db.pragma(source, { simple: true });
  }

  /** Wraps a failed write's error, and tells the health when the database could not write (`writes`: how many it refused). */
  private failed(err: unknown, what: string, writes = 1): StoreError {
    return this.health.refused(wrap(err, what), err, writes);
  }

  private get s() {
    if (this.stmts === undefined) throw new StoreError('unavailable', 'sqlite store is not open');
    return this.stmts;
  }

  async close(): Promise<void> {
    this.health.stop();
    this.probeWrite = undefined;
    const checkpointer = this.checkpointer;
    this.checkpointer = undefined;
    if (checkpointer !== undefined && checkpointer.threadId !== -1) {
      const exited = once(checkpointer, 'exit');
      checkpointer.ref(); // keep the process up until it has closed its connection
      checkpointer.postMessage('close');
      await exited;
    }
    this.db?.close();
    this.db = undefined;
    this.stmts = undefined;
    this.roomsOf = undefined;
  }

  async createUser(name: string, passwordHash: string): Promise<void> {
    try {
      this.s.createUser.run(name, passwordHash, Date.now());
      this.health.wrote();
    } catch (err) {
      throw this.failed(err, `user ${name}`);
    }
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    const r = this.s.getUser.get(name);
    return r && { name: r.name, passwordHash: r.password_hash, createdAt: r.created_at };
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.s.listUsers.all().map((r) => ({ name: r.name, passwordHash: r.password_hash, createdAt: r.created_at }));
  }

  async nameTaken(name: string): Promise<boolean> {
    return this.s.nameTaken.get(name) !== undefined;
  }

  async deleteUser(name: string): Promise<boolean> {
    const s = this.s;
    try {
      const removed = s.remove.immediate(name, Date.now());
      this.health.wrote();
      return removed;
    } catch (err) {
      throw this.failed(err, `remove user ${name}`);
    }
  }

  async userRemovalsSince(since: number): Promise<UserRemoval[]> {
    return this.s.removalsSince.all(since).map((r) => ({ id: r.id, user: r.user_name, at: r.at }));
  }

  async createSession(session: SessionRecord): Promise<void> {
    try {
      this.s.createSession.run(session.tokenHash, session.user, session.expiresAt);
      this.health.wrote();
    } catch (err) {
      throw this.failed(err, 'session');
    }
  }

  async getSession(tokenHash: string, now: number): Promise<SessionRecord | undefined> {
    const r = this.s.getSession.get(tokenHash, now);
    return r && { tokenHash: r.token_hash, user: r.user_name, expiresAt: r.expires_at };
  }

  async deleteSession(tokenHash: string): Promise<boolean> {
    const s = this.s;
    try {
      const deleted = s.deleteSession.run(tokenHash).changes > 0;
      this.health.wrote();
      return deleted;
    } catch (err) {
      throw this.failed(err, 'delete session');
    }
  }

  async deleteExpiredSessions(now: number): Promise<number> {
    const s = this.s;
    try {
      const deleted = s.deleteExpired.run(now).changes;
      this.health.wrote();
      return deleted;
    } catch (err) {
      throw this.failed(err, 'delete expired sessions');
    }
  }

  async appendMessages(batch: readonly NewMessage[]): Promise<Appended[]> {
    const s = this.s; // StoreError 'unavailable' when the store is not open
    try {
      // IMMEDIATE: take the write lock up front, so two processes never interleave seq updates.
      const appended = s.append.immediate(batch, Date.now());
      this.health.wrote();
      return appended;
    } catch (err) {
      throw this.failed(err, 'append messages', batch.length);
    }
  }

  async lastSeq(room: string): Promise<number> {
    return this.s.lastSeq.get(room)?.last_seq ?? 0;
  }

  async lastSeqs(rooms: readonly string[]): Promise<Map<string, number>> {
    const seqs = new Map<string, number>();
    if (rooms.length === 0) return seqs;
    for (const r of this.s.lastSeqs.all(JSON.stringify(rooms))) seqs.set(r.name, r.last_seq);
    return seqs;
  }

  async history(room: string, query: HistoryQuery): Promise<TimelineItem[]> {
    const rows = query.before === undefined ? this.s.historyLatest.all(room, query.limit) : this.s.historyBefore.all(room, query.before, query.limit);
    return rows.map(itemOf);
  }

  async findRef(from: string, ref: string): Promise<Pick<ChatMessage, 'room' | 'seq'> | undefined> {
    return this.s.findDedupe.get(from, ref);
  }

  async messagesAfter(room: string, after: number, limit: number): Promise<TimelineItem[]> {
    return this.s.after.all(room, after, limit).map(itemOf);
  }

  async prune(q: PruneQuery): Promise<number> {
    const s = this.s;
    try {
      let deleted = 0;
      if (q.olderThan !== undefined) deleted += s.pruneOld.run(q.olderThan, q.limit).changes;
      if (q.maxPerRoom !== undefined && deleted < q.limit) {
        for (const { room, cutoff } of s.overfull.all({ keep: q.maxPerRoom })) {
          deleted += s.pruneRoom.run({ room, cutoff, limit: q.limit - deleted }).changes;
          if (deleted >= q.limit) break;
        }
      }
      if (deleted < q.limit) deleted += s.pruneDedupe.run(q.dedupeOlderThan, q.limit - deleted).changes;
      this.health.wrote();
      return deleted;
    } catch (err) {
      throw this.failed(err, 'prune');
    }
  }

  private get r() {
    if (this.roomsOf === undefined) throw new StoreError('unavailable', 'sqlite store is not open');
    return this.roomsOf;
  }

  async applyMembership(op: MembershipOp): Promise<MembershipOutcome> {
    const r = this.r;
    try {
      const outcome = r.apply(op, Date.now());
      this.health.wrote();
      return outcome;
    } catch (err) {
      throw this.failed(err, `room ${op.room}: ${op.type}`);
    }
  }

  async roomsAccess(user: string, rooms: readonly string[]): Promise<Map<string, Access>> {
    return this.r.roomsAccess(user, rooms);
  }

  async membershipsOf(user: string, limit: number): Promise<MembershipRecord[]> {
    return this.r.membershipsOf(user, limit);
  }

  async roomMembers(room: string, page: PageQuery): Promise<MemberRecord[]> {
    return this.r.roomMembers(room, page);
  }

  async publicRooms(q: string | undefined, page: PageQuery): Promise<PublicRoom[]> {
    return this.r.publicRooms(q, page);
  }

  async ping(): Promise<void> {
    try {
      this.s.ping.get();
    } catch (err) {
      throw wrap(err, 'ping');
    }
  }
}

/**
 * The write probe (store/health.ts): one upsert of the `health` row, committed (the log can be
 * written, the file is not read-only), and, in a savepoint rolled back before the commit, a
 * row of two pages (the database can grow, or has free pages: what a batch of messages needs).
 */
function probeOf(db: Database.Database): () => void {
  const upsert = db.prepare<[number]>('INSERT INTO health (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at');
  const grow = db.prepare<[number]>('INSERT INTO health (id, at, pad) VALUES (2, 0, zeroblob(?))');
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const probe = db.transaction(() => {
    upsert.run(Date.now());
    db.exec('SAVEPOINT room_to_grow');
    try {
      grow.run(2 * pageSize);
    } finally {
      db.exec('ROLLBACK TO room_to_grow');
      db.exec('RELEASE room_to_grow');
    }
  });
  return () => probe.immediate();
}
