/**
 * The user's memberships (ParleyClient.rooms): what `welcome.rooms` listed, kept up to date by
 * `invited`, `removed`, `left`, `room_created`, `direct_opened`, and the room events about the
 * user itself (`role_changed`, `muted`, `unmuted`). A mute with an `until` is cleared when it
 * passes. Every change is reported once through `changed`.
 */
import type { RoomEvent, RoomMembership } from '@parley/protocol';

/** setTimeout's longest delay: a later mute end is checked again when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** User names compare case-insensitively (`Alice` and `alice` are one user). */
export const sameUser = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

export class Memberships {
  private readonly byRoom = new Map<string, RoomMembership>();
  private readonly muteTimers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private readonly changed: () => void) {}

  get map(): ReadonlyMap<string, Readonly<RoomMembership>> {
    return this.byRoom;
  }

  list(): RoomMembership[] {
    return [...this.byRoom.values()].map((m) => ({ ...m }));
  }

  get(room: string): RoomMembership | undefined {
    return this.byRoom.get(room);
  }

  /** Replaces everything with what a welcome listed (in its order). */
  reset(rooms: readonly RoomMembership[]): void {
    for (const t of this.muteTimers.values()) clearTimeout(t);
    this.muteTimers.clear();
    this.byRoom.clear();
    for (const m of rooms) this.put(m);
    this.changed();
  }

  /** Adds or replaces one membership (a later seq known here is kept). */
  set(m: RoomMembership): void {
    const known = this.byRoom.get(m.room);
    this.put(known !== undefined && known.seq > m.seq ? { ...m, seq: known.seq } : m);
    this.changed();
  }

  delete(room: string): boolean {
    const had = this.byRoom.delete(room);
    this.clearTimer(room);
    if (had) this.changed();
    return had;
  }

  /** A seq of the room reached the app: the membership's `seq` follows it (no change event). */
  advanced(room: string, seq: number): void {
    const m = this.byRoom.get(room);
    if (m !== undefined && seq > m.seq) m.seq = seq;
  }

  /** A room event reached the app: one about `me` changes the membership's role or mute. */
  apply(e: RoomEvent, me: string | undefined): void {
    const m = this.byRoom.get(e.room);
    if (m === undefined || me === undefined) return;
    switch (e.type) {
      case 'role_changed':
        if (!sameUser(e.user, me) || m.role === e.role) return;
        m.role = e.role;
        break;
      case 'muted':
        if (!sameUser(e.user, me)) return;
        m.muted = e.until === undefined ? {} : { until: e.until };
        this.arm(m);
        break;
      case 'unmuted':
        if (!sameUser(e.user, me) || m.muted === undefined) return;
        delete m.muted;
        this.clearTimer(m.room);
        break;
      case 'room_created':
      case 'member_joined':
      case 'member_left':
      case 'banned':
      case 'unbanned':
        return; // the membership itself comes and goes with invited/joined/left/removed
      default: {
        const _exhaustive: never = e;
        return _exhaustive;
      }
    }
    this.changed();
  }

  /** Stops the mute timers (the client closed). */
  stop(): void {
    for (const t of this.muteTimers.values()) clearTimeout(t);
    this.muteTimers.clear();
  }

  private put(m: RoomMembership): void {
    const copy: RoomMembership = { ...m };
    if (m.muted !== undefined) copy.muted = { ...m.muted };
    this.byRoom.set(m.room, copy);
    this.arm(copy);
  }

  private clearTimer(room: string): void {
    const t = this.muteTimers.get(room);
    if (t !== undefined) clearTimeout(t);
    this.muteTimers.delete(room);
  }

  /** A mute with an end: cleared (and reported) when it passes. */
  private arm(m: RoomMembership): void {
    this.clearTimer(m.room);
    const until = m.muted?.until;
    if (until === undefined) return;
    const end = Date.parse(until);
    if (Number.isNaN(end)) return;
    const left = end - Date.now();
    if (left <= 0) {
      delete m.muted;
      return;
    }
    this.muteTimers.set(
      m.room,
      setTimeout(() => {
        this.muteTimers.delete(m.room);
        if (this.byRoom.get(m.room) !== m || m.muted?.until !== until) return;
        if (Date.now() < end) return this.arm(m);
        delete m.muted;
        this.changed();
      }, Math.min(left, MAX_TIMER_MS)),
    );
  }
}
