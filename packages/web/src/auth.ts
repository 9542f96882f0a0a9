/** The sign-in form: one form, two buttons (log in / create account), the server's errors shown. */
import { byId } from './dom.js';
import { errorCode, errorText } from './errors.js';

export type AuthMode = 'login' | 'register';

export class AuthView {
  private readonly form = byId<HTMLFormElement>('auth-form');
  private readonly username = byId<HTMLInputElement>('username');
  private readonly password = byId<HTMLInputElement>('password');
  private readonly error = byId('auth-error');
  private readonly loginBtn = byId<HTMLButtonElement>('login-btn');
  private readonly registerBtn = byId<HTMLButtonElement>('register-btn');
  private busy = false;

  constructor(
    private readonly root: HTMLElement,
    private readonly submit: (mode: AuthMode, username: string, password: string) => Promise<void>,
  ) {
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.run('login');
    });
    this.registerBtn.addEventListener('click', () => void this.run('register'));
    for (const input of [this.username, this.password]) input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
  }

  show(message = ''): void {
    this.root.hidden = false;
    this.setError(message);
    this.password.value = '';
    (this.username.value === '' ? this.username : this.password).focus();
  }

  hide(): void {
    this.root.hidden = true;
    this.setError('');
    this.password.value = '';
  }

  private setError(message: string, field?: HTMLInputElement): void {
    this.error.textContent = message;
    this.username.toggleAttribute('aria-invalid', field === this.username);
    this.password.toggleAttribute('aria-invalid', field === this.password);
    if (field !== undefined) field.setAttribute('aria-invalid', 'true');
  }

  private async run(mode: AuthMode): Promise<void> {
    if (this.busy) return;
    const username = this.username.value.trim();
    const password = this.password.value;
    if (username === '') {
      this.setError('Enter a user name.', this.username);
      this.username.focus();
      return;
    }
    if (password === '') {
      this.setError('Enter a password.', this.password);
      this.password.focus();
      return;
    }
    this.setBusy(true, mode);
    this.setError('');
    try {
      await this.submit(mode, username, password);
    } catch (err) {
      const code = errorCode(err);
      const field = code === 'invalid_username' || code === 'username_taken' ? this.username : code === 'weak_password' || code === 'invalid_credentials' ? this.password : undefined;
      this.setError(errorText(err), field);
      (field ?? this.username).focus();
    } finally {
      this.setBusy(false, mode);
    }
  }

  private setBusy(busy: boolean, mode: AuthMode): void {
    this.busy = busy;
    this.form.setAttribute('aria-busy', String(busy));
    this.loginBtn.disabled = busy;
    this.registerBtn.disabled = busy;
    this.loginBtn.textContent = busy && mode === 'login' ? 'Logging in…' : 'Log in';
    this.registerBtn.textContent = busy && mode === 'register' ? 'Creating account…' : 'Create account';
  }
}
