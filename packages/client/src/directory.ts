/**
 * The HTTP side of rooms: GET /rooms (the public directory and the caller's memberships) and
 * GET /rooms/{room}/members. Answers are checked field by field before they are typed: a client
 * trusts its server, but a proxy's error page must not become a RoomDirectory.
 */
import { ROLES, type Role, type RoomMembership, VISIBILITIES, type Visibility } from '@parley/protocol';
import { ParleyError } from './errors.js';
import { get } from './http.js';
import type { ListRoomsOptions, MemberPage, MembersOptions, RoomDirectory, RoomListing, RoomMember } from './types.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isRole = (v: unknown): v is Role => typeof v === 'string' && ROLES.some((r) => r === v);
const isVisibility = (v: unknown): v is Visibility => typeof v === 'string' && VISIBILITIES.some((r) => r === v);

/** `{until?}` of a mute, or undefined when absent; throws on a malformed one. */
function mutedOf(v: unknown, what: string): { until?: string } | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw bad(what);
  return typeof v.until === 'string' ? { until: v.until } : {};
}

const bad = (what: string): ParleyError => new ParleyError('network', `Unexpected answer from ${what}.`);

/** A RoomMembership from JSON (welcome-shaped), or a thrown ParleyError('network'). */
export function membershipOf(v: unknown, what: string): RoomMembership {
  if (!isObject(v) || typeof v.room !== 'string' || !isVisibility(v.visibility) || !isRole(v.role) || typeof v.seq !== 'number') throw bad(what);
  const m: RoomMembership = { room: v.room, visibility: v.visibility, title: typeof v.title === 'string' ? v.title : '', role: v.role, seq: v.seq };
  if (typeof v.peer === 'string') m.peer = v.peer;
  const muted = mutedOf(v.muted, what);
  if (muted !== undefined) m.muted = muted;
  return m;
}

function listingOf(v: unknown, what: string): RoomListing {
  if (!isObject(v) || typeof v.room !== 'string' || typeof v.members !== 'number') throw bad(what);
  return { room: v.room, title: typeof v.title === 'string' ? v.title : '', members: v.members };
}

function memberOf(v: unknown, what: string): RoomMember {
  if (!isObject(v) || typeof v.user !== 'string' || !isRole(v.role)) throw bad(what);
  const m: RoomMember = { user: v.user, role: v.role };
  const muted = mutedOf(v.muted, what);
  if (muted !== undefined) m.muted = muted;
  return m;
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

/** GET /rooms?q=&after=&limit= */
export async function listRooms(fetchImpl: typeof fetch, base: string, token: string, opts: ListRoomsOptions): Promise<RoomDirectory> {
  const what = 'GET /rooms';
  const json = await get(fetchImpl, base, `/rooms${query({ q: opts.q, after: opts.after, limit: opts.limit })}`, token);
  if (!isObject(json) || !Array.isArray(json.rooms) || !Array.isArray(json.mine)) throw bad(what);
  const out: RoomDirectory = { rooms: json.rooms.map((r) => listingOf(r, what)), mine: json.mine.map((m) => membershipOf(m, what)) };
  if (typeof json.next === 'string') out.next = json.next;
  return out;
}

/** GET /rooms/{room}/members?after=&limit= */
export async function listMembers(fetchImpl: typeof fetch, base: string, token: string, room: string, opts: MembersOptions): Promise<MemberPage> {
  const what = 'GET /rooms/{room}/members';
  const json = await get(fetchImpl, base, `/rooms/${encodeURIComponent(room)}/members${query({ after: opts.after, limit: opts.limit })}`, token);
  if (!isObject(json) || !Array.isArray(json.members)) throw bad(what);
  const out: MemberPage = { room: typeof json.room === 'string' ? json.room : room, members: json.members.map((m) => memberOf(m, what)) };
  if (typeof json.next === 'string') out.next = json.next;
  return out;
}
