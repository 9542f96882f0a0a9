/**
 * The signed-in session, kept in sessionStorage (per tab, gone when the tab closes): the token,
 * so a reload does not ask for the password again, and the rooms the user follows.
 */
import { DEFAULT_ROOM, roomKey, USERNAME_PATTERN } from '@parley/protocol';

const KEY = 'parley.session.v1';

export interface Saved {
  user: string;
  token: string;
  rooms: string[];
  current: string;
}

export function loadSession(): Saved | undefined {
  let raw: string | null;
  try {
    raw = sessionStorage.getItem(KEY);
  } catch {
    return undefined; // storage disabled
  }
  if (raw === null) return undefined;
  try {
    const v = JSON.parse(raw) as Partial<Saved>;
    if (typeof v.user !== 'string' || !USERNAME_PATTERN.test(v.user) || typeof v.token !== 'string' || v.token === '') return undefined;
    const rooms = Array.isArray(v.rooms) ? [...new Set(v.rooms.flatMap((r) => (typeof r === 'string' ? (roomKey(r) ?? []) : [])))] : [];
    const saved = typeof v.current === 'string' ? roomKey(v.current) : undefined;
    const current = saved !== undefined && rooms.includes(saved) ? saved : (rooms[0] ?? DEFAULT_ROOM);
    return { user: v.user, token: v.token, rooms: rooms.length > 0 ? rooms : [DEFAULT_ROOM], current };
  } catch {
    return undefined;
  }
}

export function saveSession(s: Saved): void {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    // storage full or disabled: the session just won't survive a reload
  }
}

export function clearSession(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // ignore
  }
}
