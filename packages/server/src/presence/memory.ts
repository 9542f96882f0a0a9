import type { Presence } from './presence.js';

/** Presence for one node: room → user → that user's connections in the room. */
export class MemoryPresence implements Presence {
  readonly driver = 'memory';
  private readonly rooms = new Map<string, Map<string, Set<string>>>();

  async add(room: string, user: string, conn: string): Promise<boolean> {
    let users = this.rooms.get(room);
    if (users === undefined) this.rooms.set(room, (users = new Map()));
    let conns = users.get(user);
    if (conns === undefined) users.set(user, (conns = new Set()));
    const first = conns.size === 0;
    conns.add(conn);
    return first;
  }

  async remove(room: string, user: string, conn: string): Promise<boolean> {
    const users = this.rooms.get(room);
    const conns = users?.get(user);
    if (users === undefined || conns === undefined || !conns.delete(conn)) return false;
    if (conns.size > 0) return false;
    users.delete(user);
    if (users.size === 0) this.rooms.delete(room);
    return true;
  }

  async list(room: string): Promise<string[]> {
    return [...(this.rooms.get(room)?.keys() ?? [])].sort();
  }

  async close(): Promise<void> {
    this.rooms.clear();
  }
}
