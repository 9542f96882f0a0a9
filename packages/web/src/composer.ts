/**
 * The composer: the message box (Enter sends, Shift+Enter breaks the line, it grows up to
 * COMPOSER_MAX_PX), the length check, and the typing notices sent while the user types.
 */
import { byId, type Listeners } from './dom.js';

/** Tell the others we are typing at most this often while the user types. */
const TYPING_SEND_INTERVAL_MS = 2000;
/** Longest the composer grows before it scrolls. */
const COMPOSER_MAX_PX = 200;

export interface ComposerHooks {
  /** The user sent `text` (not blank, within maxChars) to `room`. */
  send(room: string, text: string): void;
  /** Tell `room` the user is typing; false when it could not be told (not connected). */
  typing(room: string): boolean;
  /** Something to tell the user (e.g. the text is too long). */
  notice(text: string): void;
}

export class Composer {
  private readonly form = byId<HTMLFormElement>('composer');
  private readonly input = byId<HTMLTextAreaElement>('message');
  private readonly label = byId('message-label');
  private room: string | undefined;
  /** Longest text the server takes (from the welcome). */
  maxChars = Number.POSITIVE_INFINITY;
  private lastTypingSent = 0;
  private lastInputAt = 0;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    listeners: Listeners,
    private readonly hooks: ComposerHooks,
  ) {
    listeners.on(this.form, 'submit', (e) => {
      e.preventDefault();
      this.submit();
      this.input.focus();
    });
    listeners.on(this.input, 'keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
    listeners.on(this.input, 'input', () => this.onInput());
  }

  /** The room messages go to (undefined: none, and the box is disabled). */
  setRoom(name: string | undefined): void {
    this.room = name;
    const placeholder = name === undefined ? 'Join a room to send messages' : `Message #${name}`;
    this.input.placeholder = placeholder;
    this.label.textContent = placeholder;
    this.input.disabled = name === undefined;
  }

  focus(): void {
    this.input.focus();
  }

  private submit(): void {
    const text = this.input.value;
    if (text.trim() === '' || this.room === undefined) return;
    if (text.length > this.maxChars) {
      this.hooks.notice(`That message is ${text.length} characters long; the limit is ${this.maxChars}.`);
      return;
    }
    this.input.value = '';
    this.resize();
    this.resetTyping();
    this.hooks.send(this.room, text);
  }

  /**
   * Typing notices: at most one per TYPING_SEND_INTERVAL_MS, plus a trailing one when the user
   * is still typing at the end of the interval (the SDK may drop a notice silently, e.g. within
   * its own 1 s window after the previous one; the trailing call makes up for it).
   */
  private onInput(): void {
    this.resize();
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
    if (this.room === undefined) return;
    const now = Date.now();
    if (this.hooks.typing(this.room)) this.lastTypingSent = now;
  }

  /** Forgets the typing notices sent (after a send, or when the screen stops). */
  resetTyping(): void {
    this.lastTypingSent = 0;
    if (this.typingTimer !== undefined) clearTimeout(this.typingTimer);
    this.typingTimer = undefined;
  }

  private resize(): void {
    // CSSOM writes are allowed by the CSP (style-src 'self' forbids only inline style markup).
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, COMPOSER_MAX_PX)}px`;
  }
}
