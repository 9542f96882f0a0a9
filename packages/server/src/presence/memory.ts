import type { Presence } from './presence.js';

/** Presence for one node: room → user → that user's connections in the room. */
export class MemoryPresence implements Presence {
  readonly driver = 'memory';
  private readonly rooms = new Map<string, Map<string, Set<string>>>();
  /** room → its users, sorted (callers must not modify the array). */
  private readonly sorted = new Map<string, string[]>();

  async add(room: string, user: string, conn: string): Promise<boolean> {
    let users = this.rooms.get(room);
    if (users === undefined) this.rooms.set(room, (users = new Map()));
    let conns = users.get(user);
    if (conns === undefined) users.set(user, (conns = new Set()));
    const first = conns.size === 0;
    conns.add(conn);
    if (first) this.sorted.delete(room);
    return first;
  }

  async remove(room: string, user: string, conn: string): Promise<boolean> {
    const users = this.rooms.get(room);
    const conns = users?.get(user);
    if (users === undefined || conns === undefined || !conns.delete(conn)) return false;
    if (conns.size > 0) return false;
    users.delete(user);
    this.sorted.delete(room);
    if (users.size === 0) this.rooms.delete(room);
    return true;
  }

  async list(room: string): Promise<string[]> {
    const users = this.rooms.get(room);
    if (users === undefined) return [];
    // Sorted once per change of the room's user set, not once per join.
    let sorted = this.sorted.get(room);
    if (sorted === undefined) this.sorted.set(room, (sorted = [...users.keys()].sort()));
    return sorted;
  }

  async close(): Promise<void> {
    this.rooms.clear();
    this.sorted.clear();
  }
}
