/**
 * The chat screen: wires a connected ParleyClient to the views (rooms, messages, people,
 * typing, connection state) and owns the page's per-room state.
 */
import type { ParleyClient, StateEvent } from '@parley/client';
import { type ChatMessage, DEFAULT_ROOM, ErrorCodes, MAX_HISTORY_PAGE, roomKey } from '@parley/protocol';
import { byId } from './dom.js';
import { errorCode, errorText } from './errors.js';
import { colorClass, initial } from './format.js';
import { MessageView, type RenderMode } from './messages.js';
import { type Pending, RoomModel } from './model.js';
import { PeopleView } from './people.js';
import { RoomList } from './rooms.js';
import { StatusView } from './status.js';
import { toast } from './toast.js';

/** Messages fetched per history page. */
const PAGE = Math.min(50, MAX_HISTORY_PAGE);
/** Tell the others we are typing at most this often while the user types. */
const TYPING_SEND_INTERVAL_MS = 2000;
/** Forget that someone is typing after this long without a new typing event. */
const TYPING_SHOW_MS = 3000;
/** Longest the composer grows before it scrolls. */
const COMPOSER_MAX_PX = 200;
/** Codes of a 'closed' state after which the stored token is useless. */
export const SESSION_GONE: ReadonlySet<string> = new Set(['auth', 'session_revoked', 'user_removed', 'unauthorized']);
/** Below this width the sidebar is a drawer (keep in step with style.css). */
const NARROW_NAV = '(max-width: 767px)';

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
  private readonly cleanup: (() => void)[] = [];
  private pendingCounter = 0;
  private lastTypingSent = 0;
  private lastInputAt = 0;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private maxChars = Number.POSITIVE_INFINITY;
  private stopped = false;

  private readonly root = byId('chat');
  private readonly main = byId('main');
  private readonly sidebar = byId('sidebar');
  private readonly scrim = byId('scrim');
  private readonly navOpen = byId<HTMLButtonElement>('nav-open');
  private readonly navBadge = byId('nav-badge');
  private readonly roomTitle = byId('room-title');
  private readonly composer = byId<HTMLFormElement>('composer');
  private readonly input = byId<HTMLTextAreaElement>('message');
  private readonly inputLabel = byId('message-label');
  private readonly joinForm = byId<HTMLFormElement>('join-form');
  private readonly joinInput = byId<HTMLInputElement>('join-input');
  private readonly joinError = byId('join-error');
  private readonly peopleBtn = byId<HTMLButtonElement>('people-btn');
  private readonly toasts = byId('toasts');
  private readonly log = byId('log');
  private readonly reconnectBtn = byId<HTMLButtonElement>('reconnect-btn');

  private readonly messages: MessageView;
  private readonly roomList: RoomList;
  private readonly people: PeopleView;
  private readonly status: StatusView;

  constructor(private readonly opts: ChatOptions) {
    this.client = opts.client;
    this.me = opts.me;
    this.order = [...new Set(opts.rooms)];
    for (const r of this.order) this.model(r);

    this.messages = new MessageView(this.log, byId<HTMLOListElement>('messages'), byId('log-top'), byId<HTMLButtonElement>('jump'), {
      nearTop: () => void this.loadOlder(),
      retry: (p) => this.retry(p),
      discard: (p) => this.discard(p),
    });
    this.messages.setMe(this.me);
    this.roomList = new RoomList(byId<HTMLUListElement>('room-list'), {
      select: (room) => this.select(room, true),
      leave: (room) => void this.leave(room),
    });
    this.people = new PeopleView(byId<HTMLUListElement>('member-list'), byId('members-title'), byId('people-faces'), byId('people-count'), this.peopleBtn, byId('typing'), byId('room-sub'));
    this.status = new StatusView(byId('conn'), byId('conn-text'), byId('conn-live'), byId('me-status'), byId('offline-note'));

    byId('me-name').textContent = this.me;
    const meAvatar = byId('me-avatar');
    meAvatar.className = `avatar ${colorClass(this.me)}`;
    meAvatar.textContent = initial(this.me);

    this.wireClient();
    this.wireDom();
    this.onState({ state: this.client.state });
    this.select(this.order.includes(opts.current) ? opts.current : this.order[0], false);
  }

  /** Shows the chat screen. */
  show(): void {
    this.root.hidden = false;
    this.input.focus();
  }

  /** Detaches from the client and the DOM (logout, expired session). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const off of this.unsubscribe) off();
    for (const off of this.cleanup) off();
    for (const room of this.rooms.values()) for (const t of room.typing.values()) clearTimeout(t);
    this.resetTyping();
    this.status.stop();
    this.root.hidden = true;
    this.setNav(false);
    this.toasts.replaceChildren();
    document.title = 'Parley';
  }

  // -------------------------------------------------------------------------------------------
  // Client events

  private wireClient(): void {
    const c = this.client;
    this.unsubscribe.push(
      c.on('welcome', (w) => {
        this.maxChars = w.limits.maxMessageChars;
      }),
      c.on('state', (e) => this.onState(e)),
      c.on('new_message', (m) => this.onMessage(m)),
      c.on('presence', (p) => {
        const room = this.rooms.get(p.room);
        if (room === undefined) return;
        room.online.clear();
        for (const u of p.users) room.online.add(u);
        if (p.room === this.current) this.renderPeople();
      }),
      c.on('user_joined', (p) => {
        const room = this.rooms.get(p.room);
        if (room === undefined) return;
        room.online.add(p.user);
        if (p.room === this.current) this.renderPeople();
      }),
      c.on('user_left', (p) => {
        const room = this.rooms.get(p.room);
        if (room === undefined) return;
        room.online.delete(p.user);
        this.stopTyping(room, p.user);
        if (p.room === this.current) this.renderPeople();
      }),
      c.on('typing', (p) => {
        const room = this.rooms.get(p.room);
        if (room === undefined || p.user === this.me) return;
        const old = room.typing.get(p.user);
        if (old !== undefined) clearTimeout(old);
        room.typing.set(p.user, setTimeout(() => this.stopTyping(room, p.user), TYPING_SHOW_MS));
        if (p.room === this.current) this.renderTyping();
      }),
      c.on('gap', (g) => {
        const room = this.rooms.get(g.room);
        if (room === undefined) return;
        room.clearMessages();
        if (g.room === this.current) {
          this.messages.render(room, 'update');
          void this.loadLatest(room);
        }
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
      if (room !== undefined && !room.loaded) void this.loadLatest(room);
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
    const followed = this.client.rooms;
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

  private onMessage(m: ChatMessage): void {
    const room = this.rooms.get(m.room);
    if (room === undefined) return;
    const isNew = room.add([m]) > 0;
    this.stopTyping(room, m.from);
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

  private stopTyping(room: RoomModel, user: string): void {
    const t = room.typing.get(user);
    if (t === undefined) return;
    clearTimeout(t);
    room.typing.delete(user);
    if (room.name === this.current) this.renderTyping();
  }

  // -------------------------------------------------------------------------------------------
  // History

  private async loadLatest(room: RoomModel): Promise<void> {
    if (room.loading || this.client.state !== 'open') return;
    room.loading = true;
    if (room.name === this.current) this.messages.render(room, 'update');
    try {
      const page = await this.client.history(room.name, { limit: PAGE });
      room.add(page);
      room.loaded = true;
      room.hasMore = page.length >= PAGE && (page.at(-1)?.seq ?? 1) > 1;
    } catch (err) {
      toast(this.toasts, `Could not load #${room.name}: ${errorText(err)}`);
    } finally {
      room.loading = false;
    }
    if (room.name === this.current && !this.stopped) {
      this.messages.render(room, 'update');
      if (this.messages.needsMore()) void this.loadOlder();
    }
  }

  private async loadOlder(): Promise<void> {
    const room = this.current === undefined ? undefined : this.rooms.get(this.current);
    if (room === undefined || !room.loaded || room.loading || !room.hasMore || this.client.state !== 'open') return;
    const before = room.oldestSeq();
    if (before === undefined || before <= 1) {
      room.hasMore = false;
      this.messages.render(room, 'prepend');
      return;
    }
    room.loading = true;
    this.messages.render(room, 'prepend');
    let ok = false;
    try {
      const page = await this.client.history(room.name, { before, limit: PAGE });
      room.add(page);
      room.hasMore = page.length >= PAGE && (page.at(-1)?.seq ?? 1) > 1;
      ok = true;
    } catch (err) {
      toast(this.toasts, `Could not load older messages: ${errorText(err)}`);
    } finally {
      room.loading = false;
    }
    if (room.name !== this.current || this.stopped) return;
    this.messages.render(room, 'prepend');
    if (ok && room.hasMore && this.messages.needsMore()) void this.loadOlder();
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  private sendFromComposer(): void {
    const text = this.input.value;
    if (text.trim() === '' || this.current === undefined) return;
    if (text.length > this.maxChars) {
      toast(this.toasts, `That message is ${text.length} characters long; the limit is ${this.maxChars}.`);
      return;
    }
    this.input.value = '';
    this.resizeComposer();
    this.resetTyping();
    const room = this.model(this.current);
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
    this.input.focus();
  }

  private discard(p: Pending): void {
    const room = this.rooms.get(p.room);
    if (room === undefined) return;
    room.pending = room.pending.filter((x) => x !== p);
    this.messages.render(room, 'update');
    this.input.focus();
  }

  /**
   * Typing notices: at most one per TYPING_SEND_INTERVAL_MS, plus a trailing one when the user
   * is still typing at the end of the interval (the SDK may drop a notice silently, e.g. within
   * its own 1 s window after the previous one; the trailing call makes up for it).
   */
  private onComposerInput(): void {
    this.resizeComposer();
    const now = Date.now();
    this.lastInputAt = now;
    if (this.input.value.trim() === '') return;
    const wait = this.lastTypingSent + TYPING_SEND_INTERVAL_MS - now;
    if (wait <= 0) {
      this.notifyTyping();
    } else if (this.typingTimer === undefined) {
      this.typingTimer = setTimeout(() => {
        this.typingTimer = undefined;
        if (this.input.value.trim() !== '' && Date.now() - this.lastInputAt < TYPING_SEND_INTERVAL_MS) this.notifyTyping();
      }, wait);
    }
  }

  private notifyTyping(): void {
    if (this.current === undefined || this.client.state !== 'open') return;
    this.lastTypingSent = Date.now();
    this.client.typing(this.current);
  }

  private resetTyping(): void {
    this.lastTypingSent = 0;
    if (this.typingTimer !== undefined) clearTimeout(this.typingTimer);
    this.typingTimer = undefined;
  }

  private resizeComposer(): void {
    // CSSOM writes are allowed by the CSP (style-src 'self' forbids only inline style markup).
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, COMPOSER_MAX_PX)}px`;
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
    const placeholder = name === undefined ? 'Join a room to send messages' : `Message #${name}`;
    this.input.placeholder = placeholder;
    this.inputLabel.textContent = placeholder;
    this.input.disabled = name === undefined;
    this.log.setAttribute('aria-label', name === undefined ? 'Messages' : `Messages in #${name}`);
    this.messages.render(room, 'reset');
    this.renderPeople();
    this.renderTyping();
    this.renderRooms();
    this.persist();
    if (room !== undefined && !room.loaded) void this.loadLatest(room);
    if (fromUser) {
      this.setNav(false);
      this.input.focus();
    }
  }

  private async join(raw: string): Promise<void> {
    const typed = raw.trim().replace(/^#/, '');
    this.joinError.textContent = '';
    this.joinInput.removeAttribute('aria-invalid');
    // Rooms are case-insensitive: "Design" is the room "design", as the server names it.
    const name = roomKey(typed);
    if (name === undefined) {
      this.joinError.textContent = typed === '' ? 'Enter a room name.' : ErrorCodes.invalid_room;
      this.joinInput.setAttribute('aria-invalid', 'true');
      this.joinInput.focus();
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
        this.joinError.textContent = errorText(err);
        this.joinInput.setAttribute('aria-invalid', 'true');
        this.joinInput.focus();
        return;
      }
      if (this.stopped) return;
      if (!this.order.includes(name)) this.order.push(name);
    }
    this.joinInput.value = '';
    this.select(name, true);
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
    const target = next === undefined ? this.joinInput : document.querySelector<HTMLElement>(`.room-btn[data-room="${CSS.escape(next)}"]`);
    (target ?? this.joinInput).focus();
  }

  private persist(): void {
    this.opts.persist(this.order, this.current ?? this.order[0] ?? DEFAULT_ROOM);
  }

  // -------------------------------------------------------------------------------------------
  // Rendering helpers

  private renderRooms(): void {
    this.roomList.render(
      this.order.map((name) => ({ name, unread: this.rooms.get(name)?.unread ?? 0 })),
      this.current,
    );
    const unread = this.order.reduce((n, r) => n + (r === this.current ? 0 : (this.rooms.get(r)?.unread ?? 0)), 0);
    document.title = unread > 0 ? `(${unread}) Parley` : 'Parley';
    this.navBadge.hidden = unread === 0;
    this.navBadge.textContent = unread > 99 ? '99+' : String(unread);
    this.navOpen.setAttribute('aria-label', unread > 0 ? `Open room list, ${unread} unread` : 'Open room list');
  }

  private renderPeople(): void {
    const room = this.current === undefined ? undefined : this.rooms.get(this.current);
    this.people.renderOnline(room?.online ?? [], this.me, this.current);
  }

  private renderTyping(): void {
    const room = this.current === undefined ? undefined : this.rooms.get(this.current);
    this.people.renderTyping(room === undefined ? [] : [...room.typing.keys()]);
  }

  // -------------------------------------------------------------------------------------------
  // DOM wiring: composer, join form, drawers, logout

  private wireDom(): void {
    const on = <K extends keyof HTMLElementEventMap>(el: EventTarget, type: K, fn: (e: HTMLElementEventMap[K]) => void) => {
      el.addEventListener(type, fn as EventListener);
      this.cleanup.push(() => el.removeEventListener(type, fn as EventListener));
    };
    on(this.composer, 'submit', (e) => {
      e.preventDefault();
      this.sendFromComposer();
      this.input.focus();
    });
    on(this.input, 'keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.sendFromComposer();
      }
    });
    on(this.input, 'input', () => this.onComposerInput());
    on(this.joinForm, 'submit', (e) => {
      e.preventDefault();
      void this.join(this.joinInput.value);
    });
    on(this.joinInput, 'input', () => {
      this.joinError.textContent = '';
      this.joinInput.removeAttribute('aria-invalid');
    });
    on(this.navOpen, 'click', () => this.setNav(true));
    on(byId('nav-close'), 'click', () => this.setNav(false, true));
    on(this.scrim, 'click', () => {
      this.setNav(false, true);
      this.setMembers(false);
    });
    on(this.peopleBtn, 'click', () => this.setMembers(!this.root.classList.contains('members-open')));
    on(byId('members-close'), 'click', () => this.setMembers(false, true));
    on(document, 'keydown', (e) => {
      if (e.key !== 'Escape') return;
      if (this.root.classList.contains('nav-open')) this.setNav(false, true);
      else if (this.root.classList.contains('members-open')) this.setMembers(false, true);
    });
    on(byId('logout-btn'), 'click', () => void this.logout());
    on(this.reconnectBtn, 'click', () => {
      this.client.connect().catch((err: unknown) => toast(this.toasts, errorText(err)));
    });
    const narrow = matchMedia(NARROW_NAV);
    const onResize = () => {
      if (!narrow.matches) this.setNav(false);
    };
    narrow.addEventListener('change', onResize);
    this.cleanup.push(() => narrow.removeEventListener('change', onResize));
  }

  /** Opens or closes the room drawer (phone widths); the rest of the page is inert meanwhile. */
  private setNav(open: boolean, restoreFocus = false): void {
    const narrow = matchMedia(NARROW_NAV).matches;
    open &&= narrow;
    this.root.classList.toggle('nav-open', open);
    this.navOpen.setAttribute('aria-expanded', String(open));
    this.main.inert = open;
    this.scrim.hidden = !open && !this.root.classList.contains('members-open');
    if (open) (this.sidebar.querySelector<HTMLElement>('.room-btn[aria-current="true"]') ?? this.joinInput).focus();
    else if (restoreFocus) this.navOpen.focus();
  }

  /** Opens or closes the people panel (an overlay below desktop widths). */
  private setMembers(open: boolean, restoreFocus = false): void {
    this.root.classList.toggle('members-open', open);
    this.peopleBtn.setAttribute('aria-expanded', String(open));
    this.scrim.hidden = !open && !this.root.classList.contains('nav-open');
    if (open) byId('members-close').focus();
    else if (restoreFocus) this.peopleBtn.focus();
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
