/** Who is online in the current room (side panel + header faces) and who is typing. */
import { h } from './dom.js';
import { colorClass, initial, typingLabel } from './format.js';

const MAX_FACES = 3;

export class PeopleView {
  constructor(
    /** Start a direct message with this user. */
    private readonly message: (user: string) => void,
    private readonly list: HTMLUListElement,
    private readonly title: HTMLElement,
    private readonly faces: HTMLElement,
    private readonly count: HTMLElement,
    private readonly button: HTMLButtonElement,
    private readonly typing: HTMLElement,
    private readonly sub: HTMLElement,
  ) {}

  renderOnline(users: Iterable<string>, me: string, room: string | undefined): void {
    const sorted = [...users].sort((a, b) => (a === me ? -1 : b === me ? 1 : a.localeCompare(b)));
    this.title.textContent = `Online — ${sorted.length}`;
    this.list.replaceChildren(
      ...sorted.map((u) =>
        h(
          'li',
          { class: 'member', attrs: { 'data-user': u } },
          h('span', { class: `avatar avatar-sm ${colorClass(u)}`, text: initial(u), attrs: { 'aria-hidden': 'true' } }, h('span', { class: 'presence-dot' })),
          h('span', { class: 'member-name', text: u }),
          u === me ? h('span', { class: 'member-you', text: '(you)' }) : this.messageButton(u),
        ),
      ),
    );
    this.faces.replaceChildren(...sorted.slice(0, MAX_FACES).map((u) => h('span', { class: `avatar avatar-xs ${colorClass(u)}`, text: initial(u) })));
    this.count.textContent = String(sorted.length);
    this.sub.textContent = room === undefined ? '' : `${sorted.length} online`;
    this.button.setAttribute('aria-label', `${sorted.length} online in ${room === undefined ? 'this room' : `#${room}`}: show who`);
  }

  private messageButton(user: string): HTMLButtonElement {
    const b = h('button', { class: 'link-btn member-dm', text: 'Message', attrs: { type: 'button', 'aria-label': `Message ${user}`, 'data-dm': user } });
    b.addEventListener('click', () => this.message(user));
    return b;
  }

  renderTyping(users: string[]): void {
    const text = typingLabel(users);
    if (this.typing.textContent === text) return;
    this.typing.replaceChildren();
    if (text !== '') this.typing.append(h('span', { class: 'typing-dots', attrs: { 'aria-hidden': 'true' } }, h('span'), h('span'), h('span')), h('span', { text }));
    this.typing.classList.toggle('active', text !== '');
  }
}
