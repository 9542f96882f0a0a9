/**
 * The chat screen: wires a connected ParleyClient to the views (rooms, messages, people,
 * typing, connection state) and owns the page's per-room state.
 */
import type { ParleyClient, StateEvent } from '@parley/client';
import { type ChatMessage, DEFAULT_ROOM, ErrorCodes, type RoomEvent, roomKey } from '@parley/protocol';
import { Composer } from './composer.js';
import { JoinForm } from './join-form.js';
import { byId, Listeners } from './dom.js';
import { errorCode, errorText } from './errors.js';
import { colorClass, initial } from './format.js';
import { Layout } from './layout.js';
import { MessageView, type RenderMode } from './messages.js';
import { type Pending, RoomModel } from './model.js';
import { Pager } from './pager.js';
import { PeopleView } from './people.js';
import { Presence } from './presence.js';
import { RoomList } from './rooms.js';
import { StatusView } from './status.js';
import { toast } from './toast.js';

/** Codes of a 'closed' state after which the stored token is useless. */
export const SESSION_GONE: ReadonlySet<string> = new Set(['auth', 'session_revoked', 'user_removed', 'unauthorized']);

export interface ChatOptions {
  client: ParleyClient;
  me: string;
  rooms: string[];
  current: string;
  /** The rooms or the current room changed: remember them for a reload. */
  persist(rooms: string[], current: string): void;
  /** The user logged out or the session ended. */
  signedOut(message?: string): void;
}

export class ChatApp {
  private readonly client: ParleyClient;
  private readonly me: string;
  private readonly rooms = new Map<string, RoomModel>();
  private order: string[];
  private current: string | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private readonly listeners = new Listeners();
  private pendingCounter = 0;
  private stopped = false;

  private readonly root = byId('chat');
  private readonly roomTitle = byId('room-title');
  private readonly toasts = byId('toasts');
  private readonly log = byId('log');
  private readonly reconnectBtn = byId<HTMLButtonElement>('reconnect-btn');

  private readonly messages: MessageView;
  private readonly roomList: RoomList;
  private readonly status: StatusView;
  private readonly composer: Composer;
  private readonly layout: Layout;
  private readonly pager: Pager;
  private readonly presence: Presence;
  private readonly joinForm: JoinForm;

  constructor(private readonly opts: ChatOptions) {
    this.client = opts.client;
    this.me = opts.me;
    this.order = [...new Set(opts.rooms)];
    for (const r of this.order) this.model(r);

    this.messages = new MessageView(this.log, byId<HTMLOListElement>('messages'), byId('log-top'), byId<HTMLButtonElement>('jump'), {
      nearTop: () => void this.pager.loadOlder(),
      retry: (p) => this.retry(p),
      discard: (p) => this.discard(p),
    });
    this.messages.setMe(this.me);
    this.roomList = new RoomList(byId<HTMLUListElement>('room-list'), byId<HTMLUListElement>('dm-list'), {
      select: (room) => this.select(room, true),
      leave: (room) => void this.leave(room),
    });
    const people = new PeopleView(
      (user) => void this.openDirect(user),byId<HTMLUListElement>('member-list'), byId('members-title'), byId('people-faces'), byId('people-count'), byId<HTMLButtonElement>('people-btn'), byId('typing'), byId('room-sub'));
    this.presence = new Presence({ me: this.me, people, room: (name) => this.rooms.get(name), currentName: () => this.current });
    this.status = new StatusView(byId('conn'), byId('conn-text'), byId('conn-live'), byId('me-status'), byId('offline-note'));

    byId('me-name').textContent = this.me;
    const meAvatar = byId('me-avatar');
    meAvatar.className = `avatar ${colorClass(this.me)}`;
    meAvatar.textContent = initial(this.me);

    this.composer = new Composer(this.listeners, {
      send: (room, text) => this.sendFromComposer(room, text),
      typing: (room) => {
        if (this.client.state !== 'open') return false;
        this.client.typing(room);
        return true;
      },
      notice: (text) => toast(this.toasts, text),
    });
    this.joinForm = new JoinForm(this.listeners, (typed) => void this.join(typed));
    this.layout = new Layout(this.root, this.joinForm.input, this.listeners);
    this.pager = new Pager({
      client: this.client,
      messages: this.messages,
      currentName: () => this.current,
      currentRoom: () => (this.current === undefined ? undefined : this.rooms.get(this.current)),
      stopped: () => this.stopped,
      notice: (text) => toast(this.toasts, text),
    });
    this.wireClient();
    this.wireDom();
    this.onState({ state: this.client.state });
    this.select(this.order.includes(opts.current) ? opts.current : this.order[0], false);
  }

  /** Shows the chat screen. */
  show(): void {
    this.root.hidden = false;
    this.composer.focus();
  }

  /** Detaches from the client and the DOM (logout, expired session). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const off of this.unsubscribe) off();
    this.listeners.clear();
    for (const room of this.rooms.values()) for (const t of room.typing.values()) clearTimeout(t);
    this.composer.resetTyping();
    this.status.stop();
    this.root.hidden = true;
    this.layout.setNav(false);
    this.toasts.replaceChildren();
    document.title = 'Parley';
  }

  // -------------------------------------------------------------------------------------------
  // Client events

  private wireClient(): void {
    const c = this.client;
    this.unsubscribe.push(
      c.on('welcome', (w) => {
        this.composer.maxChars = w.limits.maxMessageChars;
      }),
      c.on('state', (e) => this.onState(e)),
      c.on('new_message', (m) => this.onMessage(m)),
      // Room events share the room's stream with its messages: shown as system lines in their place.
      c.on('room_created', (e) => this.onEvent({ type: 'room_created', ...e })),
      c.on('member_joined', (e) => this.onEvent({ type: 'member_joined', ...e })),
      c.on('member_left', (e) => this.onEvent({ type: 'member_left', ...e })),
      c.on('banned', (e) => this.onEvent({ type: 'banned', ...e })),
      c.on('unbanned', (e) => this.onEvent({ type: 'unbanned', ...e })),
      c.on('role_changed', (e) => this.onEvent({ type: 'role_changed', ...e })),
      c.on('muted', (e) => this.onEvent({ type: 'muted', ...e })),
      c.on('unmuted', (e) => this.onEvent({ type: 'unmuted', ...e })),
      // The memberships changed (invited, removed, left elsewhere, a room made or opened): the sidebar follows them.
      c.on('rooms', () => {
        if (this.client.state === 'open') this.syncRooms();
      }),
      c.on('removed', (r) => {
        const why = r.reason === undefined || r.reason === '' ? '' : `: ${r.reason}`;
        toast(this.toasts, `${r.by} ${r.ban ? 'banned' : 'removed'} you from #${r.room}${why}`);
      }),
      ...this.presence.wire(c),
      c.on('gap', (g) => {
        const room = this.rooms.get(g.room);
        if (room === undefined) return;
        if (g.seq < g.from) {
          // The server's room is behind what is shown (its database was reset): what is shown
          // is gone, and its seqs will be reused. Start the room over.
          room.clearMessages();
          if (g.room === this.current) {
            this.messages.render(room, 'update');
            void this.pager.loadLatest(room);
          }
          return;
        }
        // Messages gone for good: a marker in their place; what follows arrives as usual.
        room.addGone(g);
        if (g.room === this.current) this.messages.render(room, 'append');
      }),
      c.on('error', (e) => {
        toast(this.toasts, errorText(e));
      }),
    );
  }

  private onState(e: StateEvent): void {
    this.status.show(e);
    this.root.dataset.conn = e.state === 'open' ? 'online' : e.state;
    // 'closed' is final for the SDK (a terminal close code, or close()): offer to start again.
    this.reconnectBtn.hidden = e.state !== 'closed';
    if (e.state === 'open') {
      this.syncRooms();
      const room = this.current === undefined ? undefined : this.rooms.get(this.current);
      if (room !== undefined && !room.loaded) void this.pager.loadLatest(room);
    } else if (e.state === 'closed' && e.error !== undefined && SESSION_GONE.has(e.error.code)) {
      // The token was revoked (logout elsewhere) or expired: ask for the password again.
      this.opts.signedOut('Your session has ended. Log in again.');
    }
  }

  /**
   * Makes the sidebar match the rooms the client follows once connected: the SDK drops a room
   * the server refused to join (reported as an 'error' event), and may follow one the page has
   * not shown yet.
   */
  private syncRooms(): void {
    const followed = new Set([...this.client.rooms.keys()].filter((r) => this.client.followed.has(r)));
    const kept = this.order.filter((r) => followed.has(r));
    const added = [...followed].filter((r) => !this.order.includes(r));
    if (kept.length === this.order.length && added.length === 0) return;
    for (const r of this.order) if (!followed.has(r)) this.forget(r);
    this.order = [...kept, ...added];
    for (const r of added) this.model(r);
    if (this.current !== undefined && !followed.has(this.current)) this.select(this.order[0], false);
    else {
      this.renderRooms();
      this.persist();
    }
  }

  /** Drops a room's state (left, or no longer followed). */
  private forget(name: string): void {
    const room = this.rooms.get(name);
    if (room !== undefined) for (const t of room.typing.values()) clearTimeout(t);
    this.rooms.delete(name);
  }

  private onEvent(e: RoomEvent): void {
    const room = this.rooms.get(e.room);
    if (room === undefined) return;
    room.add([e]);
    if (e.room === this.current) this.messages.render(room, 'append');
  }

  private onMessage(m: ChatMessage): void {
    const room = this.rooms.get(m.room);
    if (room === undefined) return;
    const isNew = room.add([m]) > 0;
    this.presence.stopTyping(room, m.from);
    let own = false;
    if (m.from === this.me) {
      // Our own message may be echoed before its ack: it replaces the oldest pending copy.
      const i = room.pending.findIndex((p) => p.state === 'pending' && p.message === m.message);
      if (i >= 0) room.pending.splice(i, 1);
      own = true;
    }
    if (m.room === this.current) {
      this.messages.render(room, 'append', own && isNew);
    } else if (isNew && !own) {
      room.unread++;
      this.renderRooms();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  private sendFromComposer(name: string, text: string): void {
    const room = this.model(name);
    const p: Pending = { key: `p${++this.pendingCounter}`, room: room.name, message: text, sent: new Date().toISOString(), state: 'pending' };
    room.pending.push(p);
    this.messages.render(room, 'append', true);
    this.deliver(p);
  }

  private deliver(p: Pending): void {
    this.client.send(p.room, p.message).then(
      ({ seq }) => {
        const room = this.rooms.get(p.room);
        if (room === undefined) return;
        const i = room.pending.indexOf(p);
        if (i >= 0) room.pending.splice(i, 1);
        // Until the server's copy arrives, show ours under the seq the server gave it.
        if (!room.bySeq.has(seq)) room.add([{ room: p.room, seq, from: this.me, message: p.message, sent: p.sent }]);
        if (room.name === this.current) this.messages.render(room, 'update');
      },
      (err: unknown) => {
        const room = this.rooms.get(p.room);
        if (room === undefined || !room.pending.includes(p)) return;
        p.state = 'failed';
        p.error = errorText(err);
        if (room.name === this.current) this.messages.render(room, 'update');
      },
    );
  }

  private retry(p: Pending): void {
    const room = this.rooms.get(p.room);
    if (room === undefined) return;
    const i = room.pending.indexOf(p);
    if (i >= 0) room.pending.splice(i, 1);
    const again: Pending = { ...p, key: `p${++this.pendingCounter}`, state: 'pending', error: undefined, sent: new Date().toISOString() };
    room.pending.push(again);
    this.messages.render(room, 'append', true);
    this.deliver(again);
    this.composer.focus();
  }

  private discard(p: Pending): void {
    const room = this.rooms.get(p.room);
    if (room === undefined) return;
    room.pending = room.pending.filter((x) => x !== p);
    this.messages.render(room, 'update');
    this.composer.focus();
  }

  // -------------------------------------------------------------------------------------------
  // Rooms

  private model(name: string): RoomModel {
    let room = this.rooms.get(name);
    if (room === undefined) {
      room = new RoomModel(name);
      this.rooms.set(name, room);
    }
    return room;
  }

  private select(name: string | undefined, fromUser: boolean): void {
    this.current = name;
    const room = name === undefined ? undefined : this.model(name);
    if (room !== undefined) room.unread = 0;
    this.roomTitle.textContent = name ?? 'No room';
    this.composer.setRoom(name);
    this.log.setAttribute('aria-label', name === undefined ? 'Messages' : `Messages in #${name}`);
    this.messages.render(room, 'reset');
    this.presence.renderPeople();
    this.presence.renderTyping();
    this.renderRooms();
    this.persist();
    if (room !== undefined && !room.loaded) void this.pager.loadLatest(room);
    if (fromUser) {
      this.layout.setNav(false);
      this.composer.focus();
    }
  }

  private async join(raw: string): Promise<void> {
    const typed = raw.trim().replace(/^#/, '');
    this.joinForm.clearError();
    // Rooms are case-insensitive: "Design" is the room "design", as the server names it.
    const name = roomKey(typed);
    if (name === undefined) {
      this.joinForm.fail(typed === '' ? 'Enter a room name.' : ErrorCodes.invalid_room);
      return;
    }
    if (!this.order.includes(name)) {
      // The room's state exists before the join is answered: `presence` may come first.
      const fresh = !this.rooms.has(name);
      this.model(name);
      try {
        await this.client.join(name);
      } catch (err) {
        if (fresh && !this.order.includes(name)) this.rooms.delete(name);
        this.joinForm.fail(errorText(err));
        return;
      }
      if (this.stopped) return;
      if (!this.order.includes(name)) this.order.push(name);
    }
    this.joinForm.done();
    this.select(name, true);
  }

  /** Opens (or makes) the direct room with `user` and shows it. */
  private async openDirect(user: string): Promise<void> {
    let room: string;
    try {
      room = await this.client.openDirect(user);
    } catch (err) {
      toast(this.toasts, `Could not message ${user}: ${errorText(err)}`);
      return;
    }
    if (this.stopped) return;
    this.model(room);
    if (!this.order.includes(room)) this.order.push(room);
    this.select(room, true);
  }

  private async leave(name: string): Promise<void> {
    const index = this.order.indexOf(name);
    try {
      await this.client.leave(name);
    } catch (err) {
      if (errorCode(err) !== 'not_in_room') {
        toast(this.toasts, `Could not leave #${name}: ${errorText(err)}`);
        return;
      }
    }
    if (this.stopped) return;
    this.order = this.order.filter((r) => r !== name);
    this.forget(name);
    if (this.current === name) {
      this.select(this.order[Math.min(index, this.order.length - 1)], false);
    } else {
      this.renderRooms();
      this.persist();
    }
    // Keep the keyboard focus in the list: on the room that took its place, or the join box.
    const next = this.order[Math.min(index, this.order.length - 1)];
    const target = next === undefined ? this.joinForm.input : document.querySelector<HTMLElement>(`.room-btn[data-room="${CSS.escape(next)}"]`);
    (target ?? this.joinForm.input).focus();
  }

  private persist(): void {
    this.opts.persist(this.order, this.current ?? this.order[0] ?? DEFAULT_ROOM);
  }

  // -------------------------------------------------------------------------------------------
  // Rendering helpers

  private renderRooms(): void {
    this.roomList.render(
      this.order.map((name) => {
        const m = this.client.rooms.get(name);
        return { name, label: m?.peer ?? name, direct: m?.visibility === 'direct', unread: this.rooms.get(name)?.unread ?? 0 };
      }),
      this.current,
    );
    this.layout.setUnread(this.order.reduce((n, r) => n + (r === this.current ? 0 : (this.rooms.get(r)?.unread ?? 0)), 0));
  }

  // -------------------------------------------------------------------------------------------
  // DOM wiring: logout, reconnect (the composer, the join form and the layout wire their own)

  private wireDom(): void {
    const on = this.listeners;
    on.on(byId('logout-btn'), 'click', () => void this.logout());
    on.on(this.reconnectBtn, 'click', () => {
      this.client.connect().catch((err: unknown) => toast(this.toasts, errorText(err)));
    });
  }

  /** Closes the connection, revokes the token (the SDK's logout: POST /logout) and returns to the sign-in form. */
  private async logout(): Promise<void> {
    const done = this.client.logout();
    this.opts.signedOut();
    try {
      await done;
    } catch {
      // Offline: the token is forgotten here anyway and expires on the server.
    }
  }
}
