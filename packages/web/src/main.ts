/**
 * The Parley chat page. Signs in (or resumes the tab's session from sessionStorage), then hands
 * a connected ParleyClient to the chat screen.
 */
import { ParleyClient, ParleyError } from '@parley/client';
import { DEFAULT_ROOM } from '@parley/protocol';
import { AuthView, type AuthMode } from './auth.js';
import { ChatApp, SESSION_GONE } from './chat.js';
import { byId, hydrateIcons } from './dom.js';
import { errorCode } from './errors.js';
import { clearSession, loadSession, saveSession } from './session.js';

const url = location.origin;
let chat: ChatApp | undefined;

function startChat(client: ParleyClient, user: string, rooms: string[], current: string): ChatApp {
  chat?.stop();
  const app = new ChatApp({
    client,
    me: user,
    rooms,
    current,
    persist: (r, c) => {
      if (client.token !== undefined) saveSession({ user, token: client.token, rooms: r, current: c });
    },
    signedOut: (message) => signOut(message),
  });
  chat = app;
  app.show();
  return app;
}

function signOut(message?: string): void {
  clearSession();
  chat?.stop();
  chat = undefined;
  auth.show(message);
}

/**
 * Logs in with ParleyClient.login rather than handing the password to the ParleyClient: a
 * connecting client retries a refused login that is not 400/401/403 (429 too_many_attempts, 503)
 * with backoff and without telling why, while the form must show the server's reason at once.
 */
async function login(username: string, password: string): Promise<{ token: string; user: string }> {
  try {
    return await ParleyClient.login(url, username, password);
  } catch (err) {
    const wait = err instanceof ParleyError && err.code === 'too_many_attempts' && err.retryAfterMs !== undefined ? err.retryAfterMs / 1000 : 0;
    if (err instanceof ParleyError && wait > 0) {
      throw new ParleyError(err.code, `Too many failed attempts. Try again in ${wait < 120 ? `${wait} seconds` : `${Math.ceil(wait / 60)} minutes`}.`, { status: err.status ?? 429 });
    }
    throw err;
  }
}

async function submit(mode: AuthMode, username: string, password: string): Promise<void> {
  if (mode === 'register') await ParleyClient.register(url, username, password);
  const { token, user } = await login(username, password);
  saveSession({ user, token, rooms: [DEFAULT_ROOM], current: DEFAULT_ROOM });
  auth.hide();
  openChat(user, token, [DEFAULT_ROOM], DEFAULT_ROOM);
}

/** Opens the chat with a session token (fresh from the form, or the tab's after a reload). */
function openChat(user: string, token: string, rooms: string[], current: string): void {
  // No rooms of its own: the SDK follows the memberships the welcome lists (a saved room the user was
  // removed from must not be joined again).
  const client = new ParleyClient({ url, token, rooms: [] });
  startChat(client, user, rooms, current);
  // A rejected token ends in 'closed' (the chat screen signs out); other failures are retried.
  client.connect().catch((err: unknown) => {
    if (SESSION_GONE.has(errorCode(err) ?? '') && chat !== undefined) signOut('Your session has expired. Log in again.');
  });
}

/** Reopens the tab's session with its token: no password needed after a reload. */
function resume(): boolean {
  const saved = loadSession();
  if (saved === undefined) return false;
  openChat(saved.user, saved.token, saved.rooms, saved.current);
  return true;
}

const auth = new AuthView(byId('auth'), submit);
hydrateIcons();
if (!resume()) auth.show();
