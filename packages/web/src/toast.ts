/** Short notices (refused sends, failed joins) that fade after a few seconds. */
import { h } from './dom.js';

const TOAST_MS = 6000;
const MAX_TOASTS = 3;

export function toast(container: HTMLElement, text: string, kind: 'error' | 'info' = 'error'): void {
  const el = h('div', { class: `toast toast-${kind}`, text });
  container.append(el);
  while (container.childElementCount > MAX_TOASTS) container.firstElementChild?.remove();
  setTimeout(() => el.remove(), TOAST_MS);
}
