import { PresenceIndex } from './local.js';
import type { Joined, Presence } from './presence.js';

/** Presence for one node: room → user → that user's connections in the room. */
export class MemoryPresence implements Presence {
  readonly driver = 'memory';
  readonly healthy = true;
  onExpired?: ((room: string, users: string[]) => void) | undefined;
  onReturned?: ((room: string, users: string[]) => void) | undefined;
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;
  private readonly index = new PresenceIndex();
  /** room → its users, sorted (callers must not modify the array). */
  private readonly sorted = new Map<string, string[]>();

  async init(): Promise<void> {}

  async add(room: string, user: string, conn: string): Promise<Joined> {
    const first = this.index.add(room, user, conn);
    if (first) this.sorted.delete(room);
    return { first, users: await this.list(room) };
  }

  async remove(room: string, user: string, conn: string): Promise<boolean> {
    const last = this.index.remove(room, user, conn);
    if (last) this.sorted.delete(room);
    return last;
  }

  async list(room: string): Promise<string[]> {
    const users = this.index.rooms.get(room);
    if (users === undefined) return [];
    // Sorted once per change of the room's user set, not once per join.
    let sorted = this.sorted.get(room);
    if (sorted === undefined) this.sorted.set(room, (sorted = [...users.keys()].sort()));
    return sorted;
  }

  async close(): Promise<void> {
    this.index.clear();
    this.sorted.clear();
  }
}
