/** The sidebar's join box: a room name typed, and why it could not be joined. */
import { byId, type Listeners } from './dom.js';

export class JoinForm {
  readonly input = byId<HTMLInputElement>('join-input');
  private readonly form = byId<HTMLFormElement>('join-form');
  private readonly error = byId('join-error');

  constructor(listeners: Listeners, submit: (typed: string) => void) {
    listeners.on(this.form, 'submit', (e) => {
      e.preventDefault();
      submit(this.input.value);
    });
    listeners.on(this.input, 'input', () => this.clearError());
  }

  clearError(): void {
    this.error.textContent = '';
    this.input.removeAttribute('aria-invalid');
  }

  /** Shows why the room could not be joined, and puts the focus back in the box. */
  fail(message: string): void {
    this.error.textContent = message;
    this.input.setAttribute('aria-invalid', 'true');
    this.input.focus();
  }

  /** Joined: the box is emptied. */
  done(): void {
    this.input.value = '';
  }
}
