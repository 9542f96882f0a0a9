/**
 * The screen's layout: the room drawer (below 768 px, behind the menu button; the rest of the
 * page is inert while it is open), the people panel (an overlay below desktop widths), the scrim,
 * Esc, and the unread count on the menu button and in the title.
 */
import { byId, type Listeners } from './dom.js';

/** Below this width the sidebar is a drawer (keep in step with style.css). */
const NARROW_NAV = '(max-width: 767px)';

export class Layout {
  private readonly main = byId('main');
  private readonly sidebar = byId('sidebar');
  private readonly scrim = byId('scrim');
  private readonly navOpen = byId<HTMLButtonElement>('nav-open');
  private readonly navBadge = byId('nav-badge');
  private readonly peopleBtn = byId<HTMLButtonElement>('people-btn');
  private readonly membersClose = byId<HTMLButtonElement>('members-close');

  constructor(
    private readonly root: HTMLElement,
    /** Where the focus goes in an open drawer without a current room. */
    private readonly fallbackFocus: HTMLElement,
    listeners: Listeners,
  ) {
    listeners.on(this.navOpen, 'click', () => this.setNav(true));
    listeners.on(byId('nav-close'), 'click', () => this.setNav(false, true));
    listeners.on(this.scrim, 'click', () => {
      this.setNav(false, true);
      this.setMembers(false);
    });
    listeners.on(this.peopleBtn, 'click', () => this.setMembers(!this.root.classList.contains('members-open')));
    listeners.on(this.membersClose, 'click', () => this.setMembers(false, true));
    listeners.onDocument('keydown', (e) => {
      if (e.key !== 'Escape') return;
      if (this.root.classList.contains('nav-open')) this.setNav(false, true);
      else if (this.root.classList.contains('members-open')) this.setMembers(false, true);
    });
    const narrow = matchMedia(NARROW_NAV);
    listeners.onMedia(narrow, () => {
      if (!narrow.matches) this.setNav(false);
    });
  }

  /** Opens or closes the room drawer (phone widths); the rest of the page is inert meanwhile. */
  setNav(open: boolean, restoreFocus = false): void {
    const narrow = matchMedia(NARROW_NAV).matches;
    open &&= narrow;
    this.root.classList.toggle('nav-open', open);
    this.navOpen.setAttribute('aria-expanded', String(open));
    this.main.inert = open;
    this.scrim.hidden = !open && !this.root.classList.contains('members-open');
    if (open) (this.sidebar.querySelector<HTMLElement>('.room-btn[aria-current="true"]') ?? this.fallbackFocus).focus();
    else if (restoreFocus) this.navOpen.focus();
  }

  /** Opens or closes the people panel (an overlay below desktop widths). */
  setMembers(open: boolean, restoreFocus = false): void {
    this.root.classList.toggle('members-open', open);
    this.peopleBtn.setAttribute('aria-expanded', String(open));
    this.scrim.hidden = !open && !this.root.classList.contains('nav-open');
    if (open) this.membersClose.focus();
    else if (restoreFocus) this.peopleBtn.focus();
  }

  /** Messages unread outside the current room: on the menu button and in the title. */
  setUnread(unread: number): void {
    document.title = unread > 0 ? `(${unread}) Parley` : 'Parley';
    this.navBadge.hidden = unread === 0;
    this.navBadge.textContent = unread > 99 ? '99+' : String(unread);
    this.navOpen.setAttribute('aria-label', unread > 0 ? `Open room list, ${unread} unread` : 'Open room list');
  }
}
