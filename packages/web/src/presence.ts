/**
 * Who is online and who is typing, per room: the SDK's presence, user_joined, user_left and
 * typing events kept in the rooms' models, and shown (PeopleView) for the current room. A typing
 * notice shows for TYPING_SHOW_MS, or until that user's message or departure.
 */
import type { ParleyClient } from '@parley/client';
import type { RoomModel } from './model.js';
import type { PeopleView } from './people.js';

/** Forget that someone is typing after this long without a new typing event. */
const TYPING_SHOW_MS = 3000;

export interface PresenceHost {
  readonly me: string;
  readonly people: PeopleView;
  room(name: string): RoomModel | undefined;
  currentName(): string | undefined;
}

export class Presence {
  constructor(private readonly host: PresenceHost) {}

  /** Subscribes to the client's presence and typing events; returns the unsubscribe functions. */
  wire(c: ParleyClient): (() => void)[] {
    const { host } = this;
    return [
      c.on('presence', (p) => {
        const room = host.room(p.room);
        if (room === undefined) return;
        room.online.clear();
        for (const u of p.users) room.online.add(u);
        if (p.room === host.currentName()) this.renderPeople();
      }),
      c.on('user_joined', (p) => {
        const room = host.room(p.room);
        if (room === undefined) return;
        room.online.add(p.user);
        if (p.room === host.currentName()) this.renderPeople();
      }),
      c.on('user_left', (p) => {
        const room = host.room(p.room);
        if (room === undefined) return;
        room.online.delete(p.user);
        this.stopTyping(room, p.user);
        if (p.room === host.currentName()) this.renderPeople();
      }),
      c.on('typing', (p) => {
        const room = host.room(p.room);
        if (room === undefined || p.user === host.me) return;
        const old = room.typing.get(p.user);
        if (old !== undefined) clearTimeout(old);
        room.typing.set(p.user, setTimeout(() => this.stopTyping(room, p.user), TYPING_SHOW_MS));
        if (p.room === host.currentName()) this.renderTyping();
      }),
    ];
  }

  /** `user` is no longer typing in `room` (their message came, or they left). */
  stopTyping(room: RoomModel, user: string): void {
    const t = room.typing.get(user);
    if (t === undefined) return;
    clearTimeout(t);
    room.typing.delete(user);
    if (room.name === this.host.currentName()) this.renderTyping();
  }

  private currentRoom(): RoomModel | undefined {
    const name = this.host.currentName();
    return name === undefined ? undefined : this.host.room(name);
  }

  renderPeople(): void {
    this.host.people.renderOnline(this.currentRoom()?.online ?? [], this.host.me, this.host.currentName());
  }

  renderTyping(): void {
    const room = this.currentRoom();
    this.host.people.renderTyping(room === undefined ? [] : [...room.typing.keys()]);
  }
}
