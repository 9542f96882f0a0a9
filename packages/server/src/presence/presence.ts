/**
 * Presence: who is online in which room. Several connections of one user count once: `add`
 * reports the user's first connection in a room, `remove` their last.
 *
 * Implementations: `memory.ts` (one node) and `redis.ts` (shared by nodes). Every
 * implementation passes test/presence.contract.ts.
 *
 * Guarantees: `add` resolves `first: true` exactly once per (room, user) until a `remove` of
 * that user's last connection resolves true; `list` reflects every add/remove that has resolved.
 * A shared driver keeps this node's entries alive by refreshing them in the background; a
 * refresh that fails (the backend is down) is reported to `onBackgroundError` once per outage;
 * `add`, `remove` and `list` then reject with a BackendUnavailableError.
 */
import type { Driver } from '../driver.js';

export interface Joined {
  first: boolean;
  users: string[];
}

export interface Presence extends Driver {
  /**
   * Records connection `conn` of `user` in `room`. `first`: it is the user's first connection
   * there; `users`: the room's users afterwards, sorted, read in the same step (one round trip
   * where the driver has one). Callers must not modify `users` (it may be cached).
   */
  add(room: string, user: string, conn: string): Promise<Joined>;
  /** Forgets the connection; resolves true when it was the user's last one in the room. */
  remove(room: string, user: string, conn: string): Promise<boolean>;
  /** The users online in the room, sorted. Callers must not modify the array (it may be cached). */
  list(room: string): Promise<string[]>;
  /**
   * Set by the hub: users of `room` whose presence expired because their node stopped
   * refreshing it (it crashed or lost its connection). A shared driver reports each such user
   * to one node only, and only to a node with connections of its own in the room.
   */
  onExpired?: ((room: string, users: string[]) => void) | undefined;
  /**
   * Set by the hub: users of `room` on this node that another node had reported expired (this
   * node was cut off from the shared store for longer than the TTL) and are present again.
   */
  onReturned?: ((room: string, users: string[]) => void) | undefined;
}
