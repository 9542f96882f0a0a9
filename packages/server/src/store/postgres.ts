/**
 * PostgreSQL store (pg): for several Parley nodes sharing one database.
 *
 * seq: each room has a row in `rooms`; a batch bumps it by the number of new messages with
 * one upsert per room (`last_seq = last_seq + n RETURNING last_seq`), which row-locks the room
 * until commit, so concurrent nodes get disjoint, gap-free ranges. Rooms (and dedupe keys) are
 * locked in sorted order within a batch, so two batches never deadlock.
 *
 * Dedupe: `INSERT … ON CONFLICT DO NOTHING` on (user_name, ref) first; a concurrent insert of the
 * same key in another transaction waits for that one to commit, then counts as a duplicate.
 *
 * Timeouts: every connection has the server-side `statement_timeout` (`statementTimeoutMs`), and
 * every query a client-side timeout a little longer (a frozen network or database never answers,
 * so only the client can give up); a connection is given up after `connectTimeoutMs`. A client
 * whose query failed other than by an answer of the database (a timeout, a lost connection) is
 * destroyed, never returned to the pool with a query hung behind it. A session idle inside a
 * transaction (its node frozen, say) is ended by the server after twice the statement timeout,
 * so its row locks do not stop the other nodes.
 *
 * Durability: commits wait for the server's WAL flush (`synchronous_commit` as the server sets
 * it, `on` by default) unless `durability: 'normal'`, which sets `synchronous_commit = off` for
 * the store's sessions: the last commits before a crash of the database server may be lost
 * (the database stays consistent).
 *
 * Health (store/health.ts): a failure with a connection error, a timeout, SQLSTATE class 08,
 * 53 (53100 disk_full…), 57 (57014 statement timeout, 57P01 shutdown…), 58, or 25006 (read-only)
 * makes the store unhealthy until a write succeeds; the probe upserts the one row of `health`.
 */
import pg from 'pg';
import type { ChatMessage, TimelineItem } from '@parley/protocol';
import { itemOf, type MembershipOp, type MembershipOutcome, type StreamRow } from './membership.js';
import * as rooms from './postgres-rooms.js';
import { StoreHealth, type StoreFailure } from './health.js';
import { migrate } from './postgres-schema.js';
import { type Access, type Appended, type HistoryQuery, type MemberRecord, type MembershipRecord, type PageQuery, type PublicRoom, type NewMessage, type PruneQuery, type SessionRecord, type Store, StoreError, type UserRecord, type UserRemoval } from './store.js';
import { codeOf, messageOf } from '../failure.js';

// BIGINT columns come back as strings by default; seqs and times fit in a double.
const INT8 = 20;

type MessageRow = StreamRow;

/** SQLSTATE classes that say the database cannot be reached or cannot write now. */
const BACKEND_CLASSES = new Set(['08', '53', '57', '58']);

/**
 * The code of a failure that means the database is down, unreachable, too slow, full or
 * read-only: the SQLSTATE (classes 08, 53, 57, 58, and 25006), Node's network code
 * (`ECONNREFUSED`…), or `query_timeout`, `connect_timeout`, `connection_lost` for pg's own
 * errors. Undefined for anything else (a statement or value the database refused, a bug).
 */
export function pgBackend(err: unknown): string | undefined {
  const code = codeOf(err);
  if (err instanceof pg.DatabaseError) {
    return typeof code === 'string' && (BACKEND_CLASSES.has(code.slice(0, 2)) || code === '25006') ? code : undefined;
  }
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  const message = messageOf(err);
  if (/query read timeout/i.test(message)) return 'query_timeout';
  if (/timeout exceeded when trying to connect|timeout expired|connection timeout/i.test(message)) return 'connect_timeout';
  if (/connection terminated|not queryable|connection ended|connection error/i.test(message)) return 'connection_lost';
  return undefined;
}

function wrap(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = codeOf(err);
  const message = messageOf(err);
  if (code === '23505') return new StoreError('conflict', `${what}: already exists`, { cause: err });
  // Class 22 (data exception: a NUL in text, a bad byte sequence, a value out of range) and 54000
  // (a value past a limit): this data cannot be stored, whatever the state of the database.
  if (typeof code === 'string' && (code.startsWith('22') || code === '54000')) return new StoreError('invalid', `${what}: ${message}`, { cause: err });
  return new StoreError('unavailable', `${what}: ${message}`, { cause: err, backend: pgBackend(err) });
}

/** How much longer than the statement timeout the client waits for an answer before it gives up, ms. */
export const QUERY_TIMEOUT_GRACE_MS = 500;

export interface PostgresStoreOptions {
  url: string;
  /** Schema holding Parley's tables (created if missing). */
  schema?: string;
  /** Most pool connections. */
  poolSize?: number;
  /** How long to wait for a connection before failing a call, ms (default 5000). */
  connectTimeoutMs?: number | undefined;
  /** The server cancels a statement running longer than this, ms (default 5000); the client gives up QUERY_TIMEOUT_GRACE_MS later. */
  statementTimeoutMs?: number | undefined;
  /** `full` (default): the server's synchronous_commit; `normal`: synchronous_commit = off (see the module doc). */
  durability?: 'full' | 'normal' | undefined;
  /** The connections' application_name (pg_stat_activity shows it); default `parley`. */
  applicationName?: string;
}

export class PostgresStore implements Store {
  readonly driver = 'postgres';
  private pool: pg.Pool | undefined;
  private readonly schema: string;
  private readonly health = new StoreHealth(
    async () => {
      await this.p.query('INSERT INTO health (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at', [Date.now()]);
    },
    pgBackend,
    (healthy) => this.onHealth?.(healthy),
  );
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;

  get healthy(): boolean {
    return this.pool !== undefined && this.health.healthy;
  }

  get failure(): StoreFailure | undefined {
    return this.pool === undefined ? undefined : this.health.failure;
  }

  constructor(private readonly options: PostgresStoreOptions) {
    this.schema = options.schema ?? 'public';
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.schema)) throw new StoreError('unavailable', `invalid postgres schema name "${this.schema}"`);
  }

  async init(): Promise<void> {
    const statementTimeoutMs = this.options.statementTimeoutMs ?? 5000;
    const connection = {
      connectionString: this.options.url,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 5000,
      application_name: this.options.applicationName ?? 'parley',
    };
    // Migrations first, on a connection of their own without the timeouts: one may take long.
    const migrator = new pg.Client({ ...connection, options: `-c search_path=${this.schema}` });
    migrator.on('error', () => undefined); // the query in flight rejects with it
    try {
      await migrator.connect();
      await migrator.query('BEGIN');
      await migrate(migrator, this.schema);
      await migrator.query('COMMIT');
    } catch (err) {
      throw wrap(err, 'postgres migrate');
    } finally {
      await migrator.end().catch(() => undefined);
    }
    const pool = new pg.Pool({
      ...connection,
      max: this.options.poolSize ?? 10,
      idleTimeoutMillis: 30_000,
      statement_timeout: statementTimeoutMs,
      query_timeout: statementTimeoutMs + QUERY_TIMEOUT_GRACE_MS,
      idle_in_transaction_session_timeout: 2 * statementTimeoutMs,
      types: { getTypeParser: ((oid: number, format?: string) => (oid === INT8 ? Number : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
      options: `-c search_path=${this.schema}${this.options.durability === 'normal' ? ' -c synchronous_commit=off' : ''}`,
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    pool.on('error', (err) => this.onBackgroundError?.(err));
    this.pool = pool;
    await this.health.start();
  }

  /**
   * A setting as the store's sessions see it (`SHOW name`): `statement_timeout`,
   * `synchronous_commit`… For tests and diagnostics.
   */
  async setting(name: string): Promise<string> {
    if (!/^[a-z_]+$/.test(name)) throw new StoreError('invalid', `not a setting name: ${name}`);
    const { rows } = await this.q<Record<string, string>>('show', `SHOW ${name}`);
    return rows[0]?.[name] ?? '';
  }

  /** Wraps a failure's error, and tells the health when the database could not be reached or could not write. */
  private failed(err: unknown, what: string, writes = 1): StoreError {
    return this.health.refused(wrap(err, what), err, writes);
  }

  private get p(): pg.Pool {
    if (this.pool === undefined) throw new StoreError('unavailable', 'postgres store is not open');
    return this.pool;
  }

  /** One query on a pooled client (pg's pool destroys a client whose query failed). */
  private async q<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.p.query<R>(text, values);
    } catch (err) {
      throw this.failed(err, what);
    }
  }

  /** A query that writes: its success proves the database can write (store/health.ts). */
  private async w<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    const result = await this.q<R>(what, text, values);
    this.health.wrote();
    return result;
  }

  /** A transaction that writes; rejects with the database's error, unwrapped. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.p.connect();
    // A checked-out client whose connection dies emits 'error'; the query in flight rejects
    // with it too, so the listener only keeps the process alive.
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      this.health.wrote();
      return out;
    } catch (err) {
      // Only an answer of the database (a DatabaseError) leaves the connection usable; anything
      // else (a query timeout: the query still hangs on it; a lost connection; a bug here) gets
      // no ROLLBACK, which could hang as well: the client is destroyed, and the server rolls
      // the transaction back when the connection goes.
      broken ??= err instanceof pg.DatabaseError ? undefined : err instanceof Error ? err : new Error(messageOf(err));
      if (broken === undefined) await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.off('error', onError);
      // A broken connection is destroyed rather than returned to the pool.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    this.health.stop();
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }

  async createUser(name: string, passwordHash: string): Promise<void> {
    await this.w('create user', 'INSERT INTO users (name, password_hash, created_at) VALUES ($1, $2, $3)', [name, passwordHash, Date.now()]);
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    const { rows } = await this.q<{ name: string; password_hash: string; created_at: number }>(
      'get user',
      'SELECT name, password_hash, created_at FROM users WHERE lower(name) = lower($1) AND removed_at IS NULL',
      [name],
    );
    const r = rows[0];
    return r && { name: r.name, passwordHash: r.password_hash, createdAt: r.created_at };
  }

  async listUsers(): Promise<UserRecord[]> {
    const { rows } = await this.q<{ name: string; password_hash: string; created_at: number }>(
      'list users',
      'SELECT name, password_hash, created_at FROM users WHERE removed_at IS NULL ORDER BY lower(name)',
    );
    return rows.map((r) => ({ name: r.name, passwordHash: r.password_hash, createdAt: r.created_at }));
  }

  async nameTaken(name: string): Promise<boolean> {
    return ((await this.q('name taken', 'SELECT 1 FROM users WHERE lower(name) = lower($1)', [name])).rowCount ?? 0) > 0;
  }

  async deleteUser(name: string): Promise<boolean> {
    try {
      return await this.tx(async (c) => {
        const now = Date.now();
        const { rows } = await c.query<{ name: string }>(
          "UPDATE users SET removed_at = $1, password_hash = '' WHERE lower(name) = lower($2) AND removed_at IS NULL RETURNING name",
          [now, name],
        );
        const removed = rows[0]?.name;
        if (removed === undefined) return false;
        await c.query('DELETE FROM sessions WHERE user_name = $1', [removed]);
        await c.query('DELETE FROM members WHERE user_key = lower($1)', [removed]);
        await c.query('INSERT INTO user_removals (user_name, at) VALUES ($1, $2)', [removed, now]);
        return true;
      });
    } catch (err) {
      throw this.failed(err, `remove user ${name}`);
    }
  }

  async userRemovalsSince(since: number): Promise<UserRemoval[]> {
    const { rows } = await this.q<{ id: number; user_name: string; at: number }>('user removals', 'SELECT id, user_name, at FROM user_removals WHERE at >= $1 ORDER BY id', [since]);
    return rows.map((r) => ({ id: r.id, user: r.user_name, at: r.at }));
  }

  async createSession(s: SessionRecord): Promise<void> {
    await this.w('create session', 'INSERT INTO sessions (token_hash, user_name, expires_at) VALUES ($1, $2, $3)', [s.tokenHash, s.user, s.expiresAt]);
  }

  async getSession(tokenHash: string, now: number): Promise<SessionRecord | undefined> {
    const { rows } = await this.q<{ token_hash: string; user_name: string; expires_at: number }>(
      'get session',
      'SELECT token_hash, user_name, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > $2',
      [tokenHash, now],
    );
    const r = rows[0];
    return r && { tokenHash: r.token_hash, user: r.user_name, expiresAt: r.expires_at };
  }

  async deleteSession(tokenHash: string): Promise<boolean> {
    return ((await this.w('delete session', 'DELETE FROM sessions WHERE token_hash = $1', [tokenHash])).rowCount ?? 0) > 0;
  }

  async deleteExpiredSessions(now: number): Promise<number> {
    return (await this.w('delete expired sessions', 'DELETE FROM sessions WHERE expires_at <= $1', [now])).rowCount ?? 0;
  }

  async appendMessages(batch: readonly NewMessage[]): Promise<Appended[]> {
    if (batch.length === 0) return [];
    const now = Date.now();
    try {
      return await this.tx(async (c) => {
        const out: (Appended | undefined)[] = new Array(batch.length);
        // 1. Claim dedupe keys (sorted, so concurrent batches lock them in one order).
        const firstByKey = new Map<string, { i: number; from: string; ref: string }>();
        const sameAs = new Map<number, number>();
        batch.forEach((m, i) => {
          if (m.ref === undefined) return;
          const key = JSON.stringify([m.from, m.ref]);
          const first = firstByKey.get(key);
          if (first === undefined) firstByKey.set(key, { i, from: m.from, ref: m.ref });
          else sameAs.set(i, first.i);
        });
        const claimed = new Set<number>();
        const claimOf = (user: string, ref: string) => firstByKey.get(JSON.stringify([user, ref]));
        if (firstByKey.size > 0) {
          const keys = [...firstByKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, k]) => k);
          const { rows } = await c.query<{ user_name: string; ref: string }>(
            `INSERT INTO dedupe (user_name, ref, room, seq, at)
             SELECT u, r, '', 0, $3 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(u, r, o) ORDER BY o
             ON CONFLICT DO NOTHING RETURNING user_name, ref`,
            [keys.map((k) => k.from), keys.map((k) => k.ref), now],
          );
          for (const r of rows) {
            const k = claimOf(r.user_name, r.ref);
            if (k !== undefined) claimed.add(k.i);
          }
          const dupes = keys.filter((k) => !claimed.has(k.i));
          if (dupes.length > 0) {
            const found = await c.query<{ user_name: string; ref: string; room: string; seq: number }>(
              'SELECT d.user_name, d.ref, d.room, d.seq FROM dedupe d JOIN unnest($1::text[], $2::text[]) AS t(u, r) ON d.user_name = t.u AND d.ref = t.r',
              [dupes.map((k) => k.from), dupes.map((k) => k.ref)],
            );
            for (const r of found.rows) {
              const k = claimOf(r.user_name, r.ref);
              if (k !== undefined) out[k.i] = { duplicate: true, message: { room: r.room, seq: r.seq } };
            }
          }
        }
        // 2. Reserve seq ranges per room (sorted room order).
        const fresh: { i: number; m: NewMessage }[] = [];
        batch.forEach((m, i) => {
          if (!sameAs.has(i) && out[i] === undefined) fresh.push({ i, m });
        });
        const perRoom = new Map<string, number>();
        for (const { m } of fresh) perRoom.set(m.room, (perRoom.get(m.room) ?? 0) + 1);
        const next = new Map<string, number>();
        for (const [room, n] of [...perRoom.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
          const { rows } = await c.query<{ last_seq: number }>(
            'INSERT INTO rooms (name, last_seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_seq = rooms.last_seq + EXCLUDED.last_seq RETURNING last_seq',
            [room, n],
          );
          const last = rows[0]?.last_seq;
          if (last === undefined) throw new Error(`no seq reserved for room ${room}`);
          next.set(room, last - n + 1);
        }
        // 3. Insert the messages in one statement, and fill in the dedupe rows' seqs.
        const cols = { room: new Array<string>(), seq: new Array<number>(), sender: new Array<string>(), body: new Array<string>(), sent: new Array<string>(), at: new Array<number>() };
        const dedupeFix = { u: new Array<string>(), r: new Array<string>(), room: new Array<string>(), seq: new Array<number>() };
        for (const { i, m } of fresh) {
          const seq = next.get(m.room);
          if (seq === undefined) throw new Error(`no seq reserved for room ${m.room}`);
          next.set(m.room, seq + 1);
          cols.room.push(m.room);
          cols.seq.push(seq);
          cols.sender.push(m.from);
          cols.body.push(m.message);
          cols.sent.push(m.sent);
          cols.at.push(Date.parse(m.sent));
          if (m.ref !== undefined) {
            dedupeFix.u.push(m.from);
            dedupeFix.r.push(m.ref);
            dedupeFix.room.push(m.room);
            dedupeFix.seq.push(seq);
          }
          out[i] = { duplicate: false, message: { room: m.room, seq, from: m.from, message: m.message, sent: m.sent } };
        }
        if (fresh.length > 0) {
          await c.query(
            'INSERT INTO messages (room, seq, sender, body, sent, at) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[])',
            [cols.room, cols.seq, cols.sender, cols.body, cols.sent, cols.at],
          );
        }
        if (dedupeFix.u.length > 0) {
          await c.query(
            'UPDATE dedupe d SET room = t.room, seq = t.seq FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(u, r, room, seq) WHERE d.user_name = t.u AND d.ref = t.r',
            [dedupeFix.u, dedupeFix.r, dedupeFix.room, dedupeFix.seq],
          );
        }
        // 4. Repeats of a key within this batch answer like their first occurrence.
        for (const [i, first] of sameAs) {
          const f = out[first];
          if (f !== undefined) out[i] = { duplicate: true, message: { room: f.message.room, seq: f.message.seq } };
        }
        const result: Appended[] = [];
        for (const a of out) {
          if (a === undefined) throw new Error('a message of the batch got no answer');
          result.push(a);
        }
        return result;
      });
    } catch (err) {
      throw this.failed(err, 'append messages', batch.length);
    }
  }

  async lastSeq(room: string): Promise<number> {
    const { rows } = await this.q<{ last_seq: number }>('last seq', 'SELECT last_seq FROM rooms WHERE name = $1', [room]);
    return rows[0]?.last_seq ?? 0;
  }

  async lastSeqs(rooms: readonly string[]): Promise<Map<string, number>> {
    const seqs = new Map<string, number>();
    if (rooms.length === 0) return seqs;
    const { rows } = await this.q<{ name: string; last_seq: number }>('last seqs', 'SELECT name, last_seq FROM rooms WHERE name = ANY($1::text[])', [rooms]);
    for (const r of rows) seqs.set(r.name, r.last_seq); // INT8 is parsed as a number (init)
    return seqs;
  }

  async history(room: string, query: HistoryQuery): Promise<TimelineItem[]> {
    const { rows } =
      query.before === undefined
        ? await this.q<MessageRow>('history', 'SELECT room, seq, sender, body, sent, kind FROM messages WHERE room = $1 ORDER BY seq DESC LIMIT $2', [room, query.limit])
        : await this.q<MessageRow>('history', 'SELECT room, seq, sender, body, sent, kind FROM messages WHERE room = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3', [
            room,
            query.before,
            query.limit,
          ]);
    return rows.map(itemOf);
  }

  async findRef(from: string, ref: string): Promise<Pick<ChatMessage, 'room' | 'seq'> | undefined> {
    const { rows } = await this.q<{ room: string; seq: number }>('find ref', 'SELECT room, seq FROM dedupe WHERE user_name = $1 AND ref = $2 AND seq > 0', [from, ref]);
    return rows[0];
  }

  async messagesAfter(room: string, after: number, limit: number): Promise<TimelineItem[]> {
    const { rows } = await this.q<MessageRow>('messages after', 'SELECT room, seq, sender, body, sent, kind FROM messages WHERE room = $1 AND seq > $2 ORDER BY seq LIMIT $3', [room, after, limit]);
    return rows.map(itemOf);
  }

  async prune(q: PruneQuery): Promise<number> {
    let deleted = 0;
    if (q.olderThan !== undefined) {
      deleted += (
        await this.w('prune', 'DELETE FROM messages WHERE (room, seq) IN (SELECT room, seq FROM messages WHERE at < $1 LIMIT $2)', [q.olderThan, q.limit])
      ).rowCount ?? 0;
    }
    if (q.maxPerRoom !== undefined && deleted < q.limit) {
      const { rows } = await this.q<{ room: string; cutoff: number }>(
        'prune',
        'SELECT r.name AS room, r.last_seq - $1 AS cutoff FROM rooms r WHERE EXISTS (SELECT 1 FROM messages m WHERE m.room = r.name AND m.seq <= r.last_seq - $1)',
        [q.maxPerRoom],
      );
      for (const { room, cutoff } of rows) {
        deleted += (
          await this.w('prune', 'DELETE FROM messages WHERE room = $1 AND seq IN (SELECT seq FROM messages WHERE room = $1 AND seq <= $2 ORDER BY seq LIMIT $3)', [
            room,
            cutoff,
            q.limit - deleted,
          ])
        ).rowCount ?? 0;
        if (deleted >= q.limit) break;
      }
    }
    if (deleted < q.limit) {
      deleted += (
        await this.w('prune', 'DELETE FROM dedupe WHERE (user_name, ref) IN (SELECT user_name, ref FROM dedupe WHERE at < $1 LIMIT $2)', [q.dedupeOlderThan, q.limit - deleted])
      ).rowCount ?? 0;
    }
    return deleted;
  }

  async applyMembership(op: MembershipOp): Promise<MembershipOutcome> {
    try {
      return await this.tx((c) => rooms.applyMembership(c, op, Date.now()));
    } catch (err) {
      throw this.failed(err, `room ${op.room}: ${op.type}`);
    }
  }

  private readonly query = <R extends pg.QueryResultRow>(what: string, text: string, values?: unknown[]) => this.q<R>(what, text, values);

  roomsAccess(user: string, names: readonly string[]): Promise<Map<string, Access>> {
    return rooms.roomsAccess(this.query, user, names);
  }

  membershipsOf(user: string, limit: number): Promise<MembershipRecord[]> {
    return rooms.membershipsOf(this.query, user, limit);
  }

  roomMembers(room: string, page: PageQuery): Promise<MemberRecord[]> {
    return rooms.roomMembers(this.query, room, page);
  }

  publicRooms(q: string | undefined, page: PageQuery): Promise<PublicRoom[]> {
    return rooms.publicRooms(this.query, q, page);
  }

  async ping(): Promise<void> {
    await this.q('ping', 'SELECT 1');
  }
}
