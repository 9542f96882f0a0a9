/** The sidebar's room list: the current room highlighted, unread badges, a leave button each. */
import { h, icon } from './dom.js';

export interface RoomListEvents {
  select(room: string): void;
  leave(room: string): void;
}

export interface RoomEntry {
  name: string;
  /** What the list shows: the room's name, or the other user of a direct room. */
  label: string;
  /** A direct room: listed under "Direct messages". */
  direct: boolean;
  unread: number;
}

export class RoomList {
  constructor(
    private readonly list: HTMLUListElement,
    private readonly directList: HTMLUListElement,
    private readonly events: RoomListEvents,
  ) {}

  render(rooms: RoomEntry[], current: string | undefined): void {
    const focused = document.activeElement instanceof HTMLElement && this.list.contains(document.activeElement) ? document.activeElement.dataset.focusKey : undefined;
    const items = rooms.map((r) => {
      const isCurrent = r.name === current;
      const label = r.unread > 0 ? `${r.label}, ${r.unread} unread` : r.label;
      const select = h(
        'button',
        { class: 'room-btn', attrs: { type: 'button', 'aria-current': isCurrent ? 'true' : undefined, 'aria-label': label, 'data-focus-key': `s:${r.name}`, 'data-room': r.name } },
        icon('hash', 'icon icon-sm room-icon'),
        h('span', { class: 'room-name', text: r.label }),
        r.unread > 0 ? h('span', { class: 'badge', text: r.unread > 99 ? '99+' : String(r.unread), attrs: { 'aria-hidden': 'true' } }) : null,
      );
      select.addEventListener('click', () => this.events.select(r.name));
      const leave = h('button', { class: 'icon-btn leave-btn', attrs: { type: 'button', 'aria-label': `Leave ${r.label}`, title: `Leave ${r.direct ? r.label : `#${r.name}`}`, 'data-focus-key': `l:${r.name}` } }, icon('x', 'icon icon-sm'));
      leave.addEventListener('click', () => this.events.leave(r.name));
      return { direct: r.direct, li: h('li', { class: `room${isCurrent ? ' current' : ''}${r.unread > 0 ? ' unread' : ''}`, attrs: { 'data-room': r.name } }, select, leave) };
    });
    this.list.replaceChildren(...items.filter((x) => !x.direct).map((x) => x.li));
    this.directList.replaceChildren(...items.filter((x) => x.direct).map((x) => x.li));
    if (focused !== undefined) this.list.parentElement?.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
  }
}
