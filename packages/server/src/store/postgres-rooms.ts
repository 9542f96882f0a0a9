/**
 * The PostgreSQL store's rooms, members and bans (store/membership.ts has the rules). A change
 * runs in one transaction that first takes a per-room advisory lock, so changes of one room are
 * serialized across nodes; its events take their seqs with the same `last_seq` row update as
 * message batches (which row-locks the room until commit), so both share one gap-free order.
 */
import type pg from 'pg';
import type { Role, RoomEvent, Visibility } from '@parley/protocol';
import {
  type Access,
  containing,
  actorOf,
  decide,
  eventRow,
  type MemberRecord,
  type MembershipOp,
  type MembershipOutcome,
  type MembershipRecord,
  type OpState,
  type PageQuery,
  placed,
  type PublicRoom,
  type RoomRecord,
  targetOf,
} from './membership.js';

/** Migration 5 (postgres-schema.ts). */
export const ROOMS_MIGRATION = `
  ALTER TABLE rooms ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
  ALTER TABLE rooms ADD COLUMN title TEXT NOT NULL DEFAULT '';
  ALTER TABLE rooms ADD COLUMN created_by TEXT;
  ALTER TABLE rooms ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
  ALTER TABLE messages ADD COLUMN kind TEXT;
  CREATE TABLE members (
    room TEXT NOT NULL,
    user_key TEXT NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    muted_until BIGINT,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (room, user_key)
  );
  CREATE INDEX members_user ON members (user_key, joined_at);
  CREATE TABLE bans (
    room TEXT NOT NULL,
    user_key TEXT NOT NULL,
    user_name TEXT NOT NULL,
    by_name TEXT NOT NULL,
    reason TEXT,
    at BIGINT NOT NULL,
    PRIMARY KEY (room, user_key)
  );
  INSERT INTO members (room, user_key, user_name, role, muted_until, joined_at)
    SELECT room, lower(sender), min(sender), 'member', NULL, min(at) FROM messages GROUP BY room, lower(sender);
  UPDATE rooms SET created_at = COALESCE((SELECT min(at) FROM messages m WHERE m.room = rooms.name), 0);
`;

/** First key of the per-room advisory locks (the second is the room name's hash). */
const ROOM_LOCK = 0x726f6f6d; // "room"

interface MemberRow {
  user_name: string;
  role: Role;
  muted_until: number | null;
  joined_at: number;
}

const toMember = (r: MemberRow): MemberRecord => ({ user: r.user_name, role: r.role, mutedUntil: r.muted_until, joinedAt: r.joined_at });

async function memberOf(c: pg.ClientBase, room: string, user: string | undefined): Promise<MemberRecord | undefined> {
  if (user === undefined) return undefined;
  const { rows } = await c.query<MemberRow>('SELECT user_name, role, muted_until, joined_at FROM members WHERE room = $1 AND user_key = lower($2)', [room, user]);
  const r = rows[0];
  return r && toMember(r);
}

/** applyMembership inside the caller's transaction `c`. */
export async function applyMembership(c: pg.ClientBase, op: MembershipOp, now: number): Promise<MembershipOutcome> {
  await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ROOM_LOCK, op.room]);
  const { rows } = await c.query<{ name: string; visibility: Visibility; title: string; last_seq: number }>('SELECT name, visibility, title, last_seq FROM rooms WHERE name = $1', [op.room]);
  const row = rows[0];
  const room: RoomRecord | undefined = row && { name: row.name, visibility: row.visibility, title: row.title, lastSeq: row.last_seq };
  const actor = actorOf(op);
  const target = targetOf(op);
  const counts = (
    await c.query<{ members: number; owners: number }>("SELECT count(*)::int AS members, count(*) FILTER (WHERE role = 'owner')::int AS owners FROM members WHERE room = $1", [op.room])
  ).rows[0];
  const banned = ((await c.query('SELECT 1 FROM bans WHERE room = $1 AND user_key = lower($2)', [op.room, target ?? actor])).rowCount ?? 0) > 0;
  const state: OpState = {
    room,
    actor: await memberOf(c, op.room, actor),
    target: await memberOf(c, op.room, target),
    banned,
    members: counts?.members ?? 0,
    owners: counts?.owners ?? 0,
  };
  const d = decide(op, state, now);
  if (!d.ok) return d;
  let after: RoomRecord = room ?? { name: op.room, visibility: 'public', title: '', lastSeq: 0 };
  for (const ch of d.changes) {
    switch (ch.type) {
      case 'room':
        await c.query('INSERT INTO rooms (name, last_seq, visibility, title, created_by, created_at) VALUES ($1, 0, $2, $3, $4, $5)', [op.room, ch.visibility, ch.title, ch.by, now]);
        after = { name: op.room, visibility: ch.visibility, title: ch.title, lastSeq: 0 };
        break;
      case 'member':
        await c.query(
          'INSERT INTO members (room, user_key, user_name, role, muted_until, joined_at) VALUES ($1, lower($2), $2, $3, $4, $5) ON CONFLICT (room, user_key) DO UPDATE SET role = EXCLUDED.role, muted_until = EXCLUDED.muted_until',
          [op.room, ch.user, ch.role, ch.mutedUntil, now],
        );
        break;
      case 'unmember':
        await c.query('DELETE FROM members WHERE room = $1 AND user_key = lower($2)', [op.room, ch.user]);
        break;
      case 'ban':
        await c.query(
          'INSERT INTO bans (room, user_key, user_name, by_name, reason, at) VALUES ($1, lower($2), $2, $3, $4, $5) ON CONFLICT (room, user_key) DO UPDATE SET by_name = EXCLUDED.by_name, reason = EXCLUDED.reason, at = EXCLUDED.at',
          [op.room, ch.user, ch.by, ch.reason ?? null, now],
        );
        break;
      case 'unban':
        await c.query('DELETE FROM bans WHERE room = $1 AND user_key = lower($2)', [op.room, ch.user]);
        break;
      default: {
        const never: never = ch;
        return never;
      }
    }
  }
  let events: RoomEvent[] = [];
  const n = d.events.length;
  if (n > 0) {
    const bumped = await c.query<{ last_seq: number }>('UPDATE rooms SET last_seq = last_seq + $1 WHERE name = $2 RETURNING last_seq', [n, op.room]);
    const last = bumped.rows[0]?.last_seq;
    if (last === undefined) throw new Error(`no seq reserved for room ${op.room}`);
    const sent = new Date(now).toISOString();
    const first = last - n + 1;
    events = placed(op.room, d.events, first, sent);
    const ev = d.events.map(eventRow);
    await c.query(
      'INSERT INTO messages (room, seq, sender, body, sent, at, kind) SELECT $1, s, sender, body, $4, $5, kind FROM unnest($2::bigint[], $3::text[], $6::text[], $7::text[]) AS t(s, sender, body, kind)',
      [op.room, ev.map((_, i) => first + i), ev.map((e) => e.sender), sent, now, ev.map((e) => e.body), ev.map((e) => e.kind)],
    );
    after = { ...after, lastSeq: last };
  }
  return { ok: true, room: after, events, member: await memberOf(c, op.room, actor) };
}

type Query = <R extends pg.QueryResultRow>(what: string, text: string, values?: unknown[]) => Promise<pg.QueryResult<R>>;

export async function roomsAccess(q: Query, user: string, rooms: readonly string[]): Promise<Map<string, Access>> {
  const out = new Map<string, Access>();
  if (rooms.length === 0) return out;
  const { rows } = await q<{ name: string; visibility: Visibility; title: string; last_seq: number; user_name: string | null; role: Role | null; muted_until: number | null; joined_at: number | null; banned: boolean }>(
    'rooms access',
    `SELECT r.name, r.visibility, r.title, r.last_seq, m.user_name, m.role, m.muted_until, m.joined_at,
            EXISTS (SELECT 1 FROM bans b WHERE b.room = r.name AND b.user_key = lower($1)) AS banned
     FROM rooms r LEFT JOIN members m ON m.room = r.name AND m.user_key = lower($1) WHERE r.name = ANY($2::text[])`,
    [user, rooms],
  );
  for (const r of rows) {
    const member = r.user_name === null || r.role === null || r.joined_at === null ? undefined : { user: r.user_name, role: r.role, mutedUntil: r.muted_until, joinedAt: r.joined_at };
    out.set(r.name, { visibility: r.visibility, title: r.title, lastSeq: r.last_seq, member, banned: r.banned });
  }
  return out;
}

export async function membershipsOf(q: Query, user: string, limit: number): Promise<MembershipRecord[]> {
  const { rows } = await q<{ room: string; visibility: Visibility; title: string; role: Role; muted_until: number | null; last_seq: number; peer: string | null }>(
    'memberships',
    `SELECT m.room, r.visibility, r.title, m.role, m.muted_until, r.last_seq,
            CASE WHEN r.visibility = 'direct' THEN (SELECT o.user_name FROM members o WHERE o.room = m.room AND o.user_key <> m.user_key LIMIT 1) END AS peer
     FROM members m JOIN rooms r ON r.name = m.room WHERE m.user_key = lower($1) ORDER BY m.joined_at, m.room LIMIT $2`,
    [user, limit],
  );
  return rows.map((r) => ({ room: r.room, visibility: r.visibility, title: r.title, role: r.role, mutedUntil: r.muted_until, lastSeq: r.last_seq, peer: r.peer ?? undefined }));
}

export async function roomMembers(q: Query, room: string, page: PageQuery): Promise<MemberRecord[]> {
  const { rows } = await q<MemberRow>(
    'room members',
    'SELECT user_name, role, muted_until, joined_at FROM members WHERE room = $1 AND user_key COLLATE "C" > lower($2) ORDER BY user_key COLLATE "C" LIMIT $3',
    [room, page.after ?? '', page.limit],
  );
  return rows.map(toMember);
}

export async function publicRooms(q: Query, query: string | undefined, page: PageQuery): Promise<PublicRoom[]> {
  const like = containing(query ?? '');
  const { rows } = await q<{ name: string; title: string; members: number }>(
    'public rooms',
    `SELECT r.name, r.title, (SELECT count(*)::int FROM members m WHERE m.room = r.name) AS members FROM rooms r
     WHERE r.visibility = 'public' AND r.name COLLATE "C" > $1 AND (r.name LIKE $2 OR lower(r.title) LIKE $2) ORDER BY r.name COLLATE "C" LIMIT $3`,
    [page.after ?? '', like, page.limit],
  );
  return rows.map((r) => ({ room: r.name, title: r.title, members: r.members }));
}
