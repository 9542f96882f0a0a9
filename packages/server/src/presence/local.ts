/**
 * Room → user → that user's connections: the bookkeeping both presence drivers keep for the
 * connections of this node. `add` reports a user's first connection in a room, `remove` the last.
 */
export class PresenceIndex {
  readonly rooms = new Map<string, Map<string, Set<string>>>();

  /** True when this is the user's first connection in the room. */
  add(room: string, user: string, conn: string): boolean {
    let users = this.rooms.get(room);
    if (users === undefined) this.rooms.set(room, (users = new Map()));
    let conns = users.get(user);
    if (conns === undefined) users.set(user, (conns = new Set()));
    const first = conns.size === 0;
    conns.add(conn);
    return first;
  }

  /** True when this was the user's last connection in the room. */
  remove(room: string, user: string, conn: string): boolean {
    const users = this.rooms.get(room);
    const conns = users?.get(user);
    if (users === undefined || conns === undefined || !conns.delete(conn)) return false;
    if (conns.size > 0) return false;
    users.delete(user);
    if (users.size === 0) this.rooms.delete(room);
    return true;
  }

  clear(): void {
    this.rooms.clear();
  }
}
