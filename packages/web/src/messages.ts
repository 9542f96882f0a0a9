/**
 * The message list of the current room: rendering (grouping, day separators, pending and failed
 * sends, markers where messages are gone for good), keyed reconciliation so existing rows are never rebuilt, and scrolling (stay put when
 * older messages are prepended, follow new ones when the reader is at the bottom).
 */
import { isRoomEvent, type RoomEvent } from '@parley/protocol';
import { h, icon } from './dom.js';
import { colorClass, dayKey, dayLabel, eventText, fullLabel, gapMs, initial, timeLabel } from './format.js';
import type { Pending, RoomModel } from './model.js';

/** Consecutive messages of one author closer than this are shown as one group. */
const GROUP_WINDOW_MS = 5 * 60_000;
/** Within this many pixels of the bottom counts as "at the bottom". */
const BOTTOM_SLACK_PX = 48;
/** Start fetching older history when the reader is this close to the top. */
const TOP_PREFETCH_PX = 160;

export type RenderMode =
  /** A different room (or the first render): show the newest messages. */
  | 'reset'
  /** Older messages were added at the top: keep what the reader sees in place. */
  | 'prepend'
  /** New messages at the bottom: follow them if the reader was at the bottom. */
  | 'append'
  /** Rows changed in place (a pending send settled). */
  | 'update';

export interface MessageViewEvents {
  nearTop(): void;
  retry(p: Pending): void;
  discard(p: Pending): void;
}

interface MessageRow {
  kind: 'message';
  key: string;
  from: string;
  message: string;
  sent: string;
  seq?: number;
  pending?: Pending;
}

/** Where messages are gone for good: `count` seqs from `from` to `to` that the server no longer has. */
interface GoneRow {
  kind: 'gone';
  key: string;
  from: number;
  to: number;
  count: number;
}

/** A room event (someone joined, was kicked, …): a small system line in its place in the stream. */
interface EventRow {
  kind: 'event';
  key: string;
  seq: number;
  sent: string;
  event: RoomEvent;
}

type Row = MessageRow | GoneRow | EventRow;

/** "N messages are no longer available". */
export function goneText(count: number): string {
  return count === 1 ? '1 message is no longer available' : `${count.toLocaleString('en-US')} messages are no longer available`;
}

export class MessageView {
  private nodes = new Map<string, HTMLLIElement>();
  private roomName: string | undefined;
  private me = '';

  constructor(
    private readonly log: HTMLElement,
    private readonly list: HTMLOListElement,
    private readonly top: HTMLElement,
    private readonly jump: HTMLButtonElement,
    private readonly events: MessageViewEvents,
  ) {
    log.addEventListener('scroll', () => this.onScroll(), { passive: true });
    jump.addEventListener('click', () => {
      this.scrollToBottom();
      this.log.focus({ preventScroll: true });
    });
  }

  setMe(me: string): void {
    this.me = me;
  }

  isAtBottom(): boolean {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight <= BOTTOM_SLACK_PX;
  }

  scrollToBottom(): void {
    this.log.scrollTop = this.log.scrollHeight;
    this.jump.hidden = true;
  }

  /** Whether the list is too short to scroll (then scrolling up can't ask for more). */
  needsMore(): boolean {
    return this.log.scrollHeight <= this.log.clientHeight + TOP_PREFETCH_PX;
  }

  private onScroll(): void {
    if (this.isAtBottom()) this.jump.hidden = true;
    if (this.log.scrollTop <= TOP_PREFETCH_PX) this.events.nearTop();
  }

  /** Renders `room` into the list. `ownNew` says the newest change is the reader's own send. */
  render(room: RoomModel | undefined, mode: RenderMode, ownNew = false): void {
    if (room?.name !== this.roomName) {
      this.nodes.clear();
      this.roomName = room?.name;
      mode = 'reset';
    }
    const wasAtBottom = this.isAtBottom();
    const oldHeight = this.log.scrollHeight;
    const oldTop = this.log.scrollTop;
    const anchor = mode === 'prepend' ? this.firstVisible() : undefined;

    this.renderTop(room);
    const desired = room === undefined ? [] : this.rows(room);
    this.reconcile(desired);

    if (mode === 'reset') {
      this.scrollToBottom();
    } else if (mode === 'prepend') {
      // Keep the text of the first visible message where it was on screen. (Not the row's top:
      // the row loses its header when the older messages above continue its group.)
      const el = anchor === undefined ? undefined : this.nodes.get(anchor.key)?.querySelector('.msg-text');
      if (anchor !== undefined && el != null && el.isConnected) this.log.scrollTop += el.getBoundingClientRect().top - anchor.top;
      else this.log.scrollTop = oldTop + (this.log.scrollHeight - oldHeight);
    } else if (mode === 'append') {
      if (wasAtBottom || ownNew) this.scrollToBottom();
      else this.jump.hidden = false;
    } else if (wasAtBottom) {
      this.scrollToBottom();
    }
  }

  /** The first message row at least partly in view, and where its text is. */
  private firstVisible(): { key: string; top: number } | undefined {
    const viewTop = this.log.getBoundingClientRect().top;
    for (const el of this.list.children) {
      if (!(el instanceof HTMLElement) || el.dataset.key === undefined) continue;
      if (el.getBoundingClientRect().bottom <= viewTop) continue;
      const text = el.querySelector('.msg-text');
      return text === null ? undefined : { key: el.dataset.key, top: text.getBoundingClientRect().top };
    }
    return undefined;
  }

  private renderTop(room: RoomModel | undefined): void {
    let content: Node[] = [];
    let state = 'idle';
    if (room === undefined) {
      state = 'empty';
      content = [h('p', { class: 'top-title', text: 'No room' }), h('p', { class: 'top-sub', text: 'Join a room from the list to start talking.' })];
    } else if (room.loading || !room.loaded) {
      state = 'loading';
      content = [h('span', { class: 'spinner', attrs: { 'aria-hidden': 'true' } }), h('span', { text: 'Loading messages…' })];
    } else if (!room.hasMore) {
      // History begins above seq 1 when retention deleted the oldest messages.
      const pruned = (room.oldestSeq() ?? 1) > 1;
      state = pruned ? 'pruned' : 'start';
      const badge = h('span', { class: 'top-badge', attrs: { 'aria-hidden': 'true' } }, icon('hash'));
      content = [badge, h('p', { class: 'top-title', text: `Welcome to #${room.name}` }), h('p', { class: 'top-sub', text: pruned ? 'Older messages are no longer available.' : 'This is the very beginning of the room.' })];
    }
    if (this.top.dataset.state === state && this.top.dataset.room === (room?.name ?? '')) return;
    this.top.dataset.state = state;
    this.top.dataset.room = room?.name ?? '';
    this.top.replaceChildren(...content);
  }

  private rows(room: RoomModel): Row[] {
    const sorted = room.sorted();
    // Gone ranges next to a message shown (one far from what is loaded would say nothing of it).
    const gone = room.gone
      .filter((g) => room.bySeq.has(g.from - 1) || room.bySeq.has(g.to + 1))
      .map((g): GoneRow => {
        let count = g.to - g.from + 1;
        for (const m of sorted) if (m.seq >= g.from && m.seq <= g.to) count--;
        return { kind: 'gone', key: `g${g.from}-${g.to}`, from: g.from, to: g.to, count };
      })
      .filter((g) => g.count > 0)
      .sort((x, y) => x.from - y.from);
    const rows: Row[] = [];
    let next = 0;
    for (const m of sorted) {
      for (let g = gone[next]; g !== undefined && g.to < m.seq; g = gone[++next]) rows.push(g);
      if (isRoomEvent(m)) rows.push({ kind: 'event', key: `s${m.seq}`, seq: m.seq, sent: m.sent, event: m });
      else rows.push({ kind: 'message', key: `s${m.seq}`, from: m.from, message: m.message, sent: m.sent, seq: m.seq });
    }
    rows.push(...gone.slice(next));
    for (const p of room.pending) rows.push({ kind: 'message', key: p.key, from: this.me, message: p.message, sent: p.sent, pending: p });
    return rows;
  }

  /** Builds the wanted sequence of <li>s (reusing existing ones) and moves the DOM to match. */
  private reconcile(rows: Row[]): void {
    const wanted: HTMLLIElement[] = [];
    const keep = new Set<string>();
    let prev: MessageRow | undefined;
    let prevDay: string | undefined;
    for (const row of rows) {
      if (row.kind === 'gone') {
        wanted.push(this.goneRow(row));
        keep.add(row.key);
        prev = undefined; // the next message starts a group of its own (and shows its day)
        prevDay = undefined;
        continue;
      }
      const day = dayKey(row.sent);
      const newDay = prevDay === undefined ? !wanted.some((li) => li.dataset.day === day) : prevDay !== day;
      prevDay = day;
      if (newDay) {
        const key = `d${day}`;
        const label = dayLabel(row.sent);
        let sep = this.nodes.get(key);
        if (sep === undefined || sep.dataset.label !== label) {
          sep = h('li', { class: 'day', attrs: { 'data-label': label, 'data-day': day } }, h('span', { text: label }));
          this.nodes.set(key, sep);
        }
        wanted.push(sep);
        keep.add(key);
      }
      if (row.kind === 'event') {
        wanted.push(this.eventRow(row));
        keep.add(row.key);
        prev = undefined; // the next message starts a group of its own
        continue;
      }
      const groupStart = newDay || prev === undefined || prev.from !== row.from || gapMs(prev.sent, row.sent) > GROUP_WINDOW_MS;
      const li = this.row(row);
      li.classList.toggle('group-start', groupStart);
      wanted.push(li);
      keep.add(row.key);
      prev = row;
    }
    for (const key of [...this.nodes.keys()]) if (!keep.has(key)) this.nodes.delete(key);

    let cursor = this.list.firstChild;
    for (const node of wanted) {
      if (cursor === node) {
        cursor = cursor.nextSibling;
      } else {
        this.list.insertBefore(node, cursor);
      }
    }
    while (cursor !== null) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
  }

  /** A room event's system line. */
  private eventRow(row: EventRow): HTMLLIElement {
    const text = eventText(row.event, this.me);
    const existing = this.nodes.get(row.key);
    if (existing !== undefined && existing.dataset.version === text) return existing;
    const li = h(
      'li',
      { class: 'event', attrs: { 'data-key': row.key, 'data-seq': row.seq, 'data-type': row.event.type, 'data-version': text } },
      h('span', { class: 'event-text', text }),
      h('time', { class: 'event-time', text: timeLabel(row.sent), attrs: { datetime: row.sent, title: fullLabel(row.sent) } }),
    );
    this.nodes.set(row.key, li);
    return li;
  }

  /** The marker where messages are gone for good. */
  private goneRow(row: GoneRow): HTMLLIElement {
    const version = String(row.count);
    const existing = this.nodes.get(row.key);
    if (existing !== undefined && existing.dataset.version === version) return existing;
    const li = h(
      'li',
      { class: 'gone', attrs: { role: 'note', 'data-key': row.key, 'data-from': row.from, 'data-to': row.to, 'data-version': version } },
      icon('clock', 'icon icon-sm'),
      h('span', { text: goneText(row.count) }),
    );
    this.nodes.set(row.key, li);
    return li;
  }

  /** The <li> for a row: reused when its content is unchanged, rebuilt otherwise. */
  private row(row: MessageRow): HTMLLIElement {
    const version = row.pending === undefined ? `${row.sent}` : `${row.pending.state}:${row.pending.error ?? ''}`;
    const existing = this.nodes.get(row.key);
    if (existing !== undefined && existing.dataset.version === version) return existing;

    const mine = row.from === this.me;
    const time = h('time', { class: 'msg-time', text: timeLabel(row.sent), attrs: { datetime: row.sent, title: fullLabel(row.sent) } });
    const meta = h('div', { class: 'msg-meta' }, h('span', { class: 'msg-author', text: row.from }), mine ? h('span', { class: 'msg-you', text: 'you' }) : null, time);
    const body = h('div', { class: 'msg-body' }, meta, h('div', { class: 'msg-text', text: row.message }));
    const li = h(
      'li',
      {
        class: `msg${mine ? ' mine' : ''}${row.pending !== undefined ? ` ${row.pending.state}` : ''}`,
        attrs: { 'data-key': row.key, 'data-seq': row.seq, 'data-from': row.from, 'data-version': version },
      },
      h('span', { class: `avatar ${colorClass(row.from)}`, text: initial(row.from), attrs: { 'aria-hidden': 'true' } }),
      h('time', { class: 'side-time', text: timeLabel(row.sent), attrs: { datetime: row.sent, 'aria-hidden': 'true' } }),
      body,
    );
    const p = row.pending;
    if (p !== undefined && p.state === 'pending') {
      body.append(h('div', { class: 'msg-status' }, icon('clock', 'icon icon-sm'), h('span', { text: 'Sending…' })));
    } else if (p !== undefined) {
      const retry = h('button', { class: 'link-btn', text: 'Retry', attrs: { type: 'button' } });
      const discard = h('button', { class: 'link-btn', text: 'Discard', attrs: { type: 'button' } });
      retry.addEventListener('click', () => this.events.retry(p));
      discard.addEventListener('click', () => this.events.discard(p));
      body.append(h('div', { class: 'msg-status' }, h('span', { text: `Not sent: ${p.error ?? 'unknown error'}` }), retry, discard));
    }
    this.nodes.set(row.key, li);
    return li;
  }
}
