/**
 * The SQLite store's rooms, members and bans (store/membership.ts has the rules). A change runs
 * in one IMMEDIATE transaction: SQLite's write lock serializes it with every other write to the
 * file, message batches and other processes' changes included.
 */
import type Database from 'better-sqlite3';
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

/** Migration 5 (sqlite.ts): rooms get a visibility and a title, members and bans their tables; today's rooms become public, their past senders members. */
export const ROOMS_MIGRATION = `
  ALTER TABLE rooms ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
  ALTER TABLE rooms ADD COLUMN title TEXT NOT NULL DEFAULT '';
  ALTER TABLE rooms ADD COLUMN created_by TEXT;
  ALTER TABLE rooms ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE messages ADD COLUMN kind TEXT;
  CREATE TABLE members (
    room TEXT NOT NULL,
    user_key TEXT NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    muted_until INTEGER,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room, user_key)
  ) WITHOUT ROWID;
  CREATE INDEX members_user ON members (user_key, joined_at);
  CREATE TABLE bans (
    room TEXT NOT NULL,
    user_key TEXT NOT NULL,
    user_name TEXT NOT NULL,
    by_name TEXT NOT NULL,
    reason TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (room, user_key)
  ) WITHOUT ROWID;
  INSERT INTO members (room, user_key, user_name, role, muted_until, joined_at)
    SELECT room, lower(sender), min(sender), 'member', NULL, min(at) FROM messages GROUP BY room, lower(sender);
  UPDATE rooms SET created_at = COALESCE((SELECT min(at) FROM messages m WHERE m.room = rooms.name), 0);
`;

interface MemberRow {
  user_name: string;
  role: Role;
  muted_until: number | null;
  joined_at: number;
}

const toMember = (r: MemberRow): MemberRecord => ({ user: r.user_name, role: r.role, mutedUntil: r.muted_until, joinedAt: r.joined_at });


export function sqliteRooms(db: Database.Database) {
  const s = {
    room: db.prepare<[string], { name: string; visibility: Visibility; title: string; last_seq: number }>('SELECT name, visibility, title, last_seq FROM rooms WHERE name = ?'),
    member: db.prepare<[string, string], MemberRow>('SELECT user_name, role, muted_until, joined_at FROM members WHERE room = ? AND user_key = lower(?)'),
    banned: db.prepare<[string, string], { n: number }>('SELECT 1 AS n FROM bans WHERE room = ? AND user_key = lower(?)'),
    counts: db.prepare<[string], { members: number; owners: number | null }>("SELECT count(*) AS members, sum(role = 'owner') AS owners FROM members WHERE room = ?"),
    insertRoom: db.prepare<[string, Visibility, string, string, number]>('INSERT INTO rooms (name, last_seq, visibility, title, created_by, created_at) VALUES (?, 0, ?, ?, ?, ?)'),
    upsertMember: db.prepare<[string, string, string, Role, number | null, number]>(
      'INSERT INTO members (room, user_key, user_name, role, muted_until, joined_at) VALUES (?, lower(?), ?, ?, ?, ?) ON CONFLICT (room, user_key) DO UPDATE SET role = excluded.role, muted_until = excluded.muted_until',
    ),
    deleteMember: db.prepare<[string, string]>('DELETE FROM members WHERE room = ? AND user_key = lower(?)'),
    upsertBan: db.prepare<[string, string, string, string, string | null, number]>(
      'INSERT INTO bans (room, user_key, user_name, by_name, reason, at) VALUES (?, lower(?), ?, ?, ?, ?) ON CONFLICT (room, user_key) DO UPDATE SET by_name = excluded.by_name, reason = excluded.reason, at = excluded.at',
    ),
    deleteBan: db.prepare<[string, string]>('DELETE FROM bans WHERE room = ? AND user_key = lower(?)'),
    bump: db.prepare<[number, string], { last_seq: number }>('UPDATE rooms SET last_seq = last_seq + ? WHERE name = ? RETURNING last_seq'),
    insertEvent: db.prepare<[string, number, string, string, string, number, string]>('INSERT INTO messages (room, seq, sender, body, sent, at, kind) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    access: db.prepare<[string, string, string], { name: string; visibility: Visibility; title: string; last_seq: number } & Partial<MemberRow> & { banned: number }>(
      `SELECT r.name, r.visibility, r.title, r.last_seq, m.user_name, m.role, m.muted_until, m.joined_at,
              EXISTS (SELECT 1 FROM bans b WHERE b.room = r.name AND b.user_key = lower(?)) AS banned
       FROM json_each(?) AS j JOIN rooms r ON r.name = j.value LEFT JOIN members m ON m.room = r.name AND m.user_key = lower(?)`,
    ),
    memberships: db.prepare<[string, number], { room: string; visibility: Visibility; title: string; role: Role; muted_until: number | null; last_seq: number; peer: string | null }>(
      `SELECT m.room, r.visibility, r.title, m.role, m.muted_until, r.last_seq,
              CASE WHEN r.visibility = 'direct' THEN (SELECT o.user_name FROM members o WHERE o.room = m.room AND o.user_key <> m.user_key LIMIT 1) END AS peer
       FROM members m JOIN rooms r ON r.name = m.room WHERE m.user_key = lower(?) ORDER BY m.joined_at, m.room LIMIT ?`,
    ),
    members: db.prepare<[string, string, number], MemberRow>('SELECT user_name, role, muted_until, joined_at FROM members WHERE room = ? AND user_key > lower(?) ORDER BY user_key LIMIT ?'),
    publicRooms: db.prepare<[string, string, string, number], { name: string; title: string; members: number }>(
      `SELECT r.name, r.title, (SELECT count(*) FROM members m WHERE m.room = r.name) AS members FROM rooms r
       WHERE r.visibility = 'public' AND r.name > ? AND (r.name LIKE ? ESCAPE '\\' OR lower(r.title) LIKE ? ESCAPE '\\') ORDER BY r.name LIMIT ?`,
    ),
  };

  const member = (room: string, user: string | undefined): MemberRecord | undefined => {
    if (user === undefined) return undefined;
    const r = s.member.get(room, user);
    return r && toMember(r);
  };

  const apply = db.transaction((op: MembershipOp, now: number): MembershipOutcome => {
    const row = s.room.get(op.room);
    const room: RoomRecord | undefined = row && { name: row.name, visibility: row.visibility, title: row.title, lastSeq: row.last_seq };
    const actor = actorOf(op);
    const target = targetOf(op);
    const counts = s.counts.get(op.room);
    const state: OpState = {
      room,
      actor: member(op.room, actor),
      target: member(op.room, target),
      banned: s.banned.get(op.room, target ?? actor) !== undefined,
      members: counts?.members ?? 0,
      owners: counts?.owners ?? 0,
    };
    const d = decide(op, state, now);
    if (!d.ok) return d;
    let after: RoomRecord = room ?? { name: op.room, visibility: 'public', title: '', lastSeq: 0 };
    for (const c of d.changes) {
      switch (c.type) {
        case 'room':
          s.insertRoom.run(op.room, c.visibility, c.title, c.by, now);
          after = { name: op.room, visibility: c.visibility, title: c.title, lastSeq: 0 };
          break;
        case 'member':
          s.upsertMember.run(op.room, c.user, c.user, c.role, c.mutedUntil, now);
          break;
        case 'unmember':
          s.deleteMember.run(op.room, c.user);
          break;
        case 'ban':
          s.upsertBan.run(op.room, c.user, c.user, c.by, c.reason ?? null, now);
          break;
        case 'unban':
          s.deleteBan.run(op.room, c.user);
          break;
        default: {
          const never: never = c;
          return never;
        }
      }
    }
    let events: RoomEvent[] = [];
    if (d.events.length > 0) {
      const last = s.bump.get(d.events.length, op.room)?.last_seq ?? d.events.length;
      const sent = new Date(now).toISOString();
      events = placed(op.room, d.events, last - d.events.length + 1, sent);
      d.events.forEach((e, i) => {
        const r = eventRow(e);
        s.insertEvent.run(op.room, last - d.events.length + 1 + i, r.sender, r.body, sent, now, r.kind);
      });
      after = { ...after, lastSeq: last };
    }
    return { ok: true, room: after, events, member: member(op.room, actor) };
  });

  return {
    apply: (op: MembershipOp, now: number) => apply.immediate(op, now),

    roomsAccess(user: string, rooms: readonly string[]): Map<string, Access> {
      const out = new Map<string, Access>();
      if (rooms.length === 0) return out;
      for (const r of s.access.all(user, JSON.stringify(rooms), user)) {
        const m: MemberRecord | undefined =
          r.user_name === undefined || r.user_name === null || r.role === undefined || r.joined_at === undefined
            ? undefined
            : { user: r.user_name, role: r.role, mutedUntil: r.muted_until ?? null, joinedAt: r.joined_at };
        out.set(r.name, { visibility: r.visibility, title: r.title, lastSeq: r.last_seq, member: m, banned: r.banned === 1 });
      }
      return out;
    },

    membershipsOf(user: string, limit: number): MembershipRecord[] {
      return s.memberships.all(user, limit).map((r) => ({
        room: r.room,
        visibility: r.visibility,
        title: r.title,
        role: r.role,
        mutedUntil: r.muted_until,
        lastSeq: r.last_seq,
        peer: r.peer ?? undefined,
      }));
    },

    roomMembers(room: string, page: PageQuery): MemberRecord[] {
      return s.members.all(room, page.after ?? '', page.limit).map(toMember);
    },

    publicRooms(q: string | undefined, page: PageQuery): PublicRoom[] {
      const like = containing(q ?? '');
      return s.publicRooms.all(page.after ?? '', like, like, page.limit).map((r) => ({ room: r.name, title: r.title, members: r.members }));
    },
  };
}
