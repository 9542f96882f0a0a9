/**
 * Tiny DOM helpers. User data only ever reaches the page as text: `h()` appends strings as text
 * nodes and sets `text` through textContent. There is no innerHTML anywhere in the page.
 */

type Child = Node | string | null | undefined | false;

export interface Props {
  class?: string;
  text?: string;
  attrs?: Record<string, string | number | boolean | undefined>;
}

/** Creates an element; `children` strings become text nodes (never parsed as HTML). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class !== undefined) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  if (props.attrs !== undefined) {
    for (const [name, value] of Object.entries(props.attrs)) {
      if (value === undefined || value === false) continue;
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** The element with this id, or a loud error when the page markup and the code disagree. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from index.html`);
  return el as T;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Inline icons (paths from the Lucide icon set, ISC licence), built with DOM calls. */
const ICONS: Record<string, string[]> = {
  menu: ['M4 6h16', 'M4 12h16', 'M4 18h16'],
  send: ['M22 2 11 13', 'M22 2 15 22 11 13 2 9 22 2'],
  x: ['M18 6 6 18', 'M6 6l12 12'],
  plus: ['M12 5v14', 'M5 12h14'],
  hash: ['M4 9h16', 'M4 15h16', 'M10 3 8 21', 'M16 3l-2 18'],
  users: ['M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2', 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M22 21v-2a4 4 0 0 0-3-3.87', 'M16 3.13a4 4 0 0 1 0 7.75'],
  logout: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'M16 17l5-5-5-5', 'M21 12H9'],
  down: ['M12 5v14', 'M19 12l-7 7-7-7'],
  retry: ['M3 12a9 9 0 1 0 3-6.7L3 8', 'M3 3v5h5'],
  clock: ['M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z', 'M12 6v6l4 2'],
};

export function icon(name: keyof typeof ICONS & string, cls = 'icon'): SVGSVGElement {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of ICONS[name] ?? []) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

/** Puts icons into every `<span data-icon="name">` of the static markup. */
export function hydrateIcons(root: ParentNode = document): void {
  for (const el of root.querySelectorAll<HTMLElement>('[data-icon]')) {
    const name = el.dataset.icon;
    if (name !== undefined && ICONS[name] !== undefined && el.firstChild === null) el.append(icon(name));
  }
}

/** Event listeners added for a screen's lifetime, removed together by clear(). */
export class Listeners {
  private readonly offs: (() => void)[] = [];

  on<K extends keyof HTMLElementEventMap>(el: HTMLElement, type: K, fn: (e: HTMLElementEventMap[K]) => void): void {
    el.addEventListener(type, fn);
    this.offs.push(() => el.removeEventListener(type, fn));
  }

  onDocument<K extends keyof DocumentEventMap>(type: K, fn: (e: DocumentEventMap[K]) => void): void {
    document.addEventListener(type, fn);
    this.offs.push(() => document.removeEventListener(type, fn));
  }

  /** Calls `fn` whenever the media query's match changes. */
  onMedia(query: MediaQueryList, fn: () => void): void {
    query.addEventListener('change', fn);
    this.offs.push(() => query.removeEventListener('change', fn));
  }

  clear(): void {
    for (const off of this.offs.splice(0)) off();
  }
}
