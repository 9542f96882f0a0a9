/**
 * Accounts and sessions over HTTP: register, login, logout, and a fresh one-time ticket for each
 * connection (POST /ticket with the token; when there is none, or it is rejected, a login with
 * the credentials given, whose answer carries the first ticket).
 */
import { ParleyError } from './errors.js';
import { post, stringField } from './http.js';
import type { LoginResult } from './types.js';

/** POST /register: resolves once the account exists. */
export async function register(fetchImpl: typeof fetch, base: string, username: string, password: string): Promise<void> {
  await post(fetchImpl, base, '/register', { username, password });
}

/** POST /login: a new session, and a ticket for its first connection. */
async function loginWithTicket(fetchImpl: typeof fetch, base: string, username: string, password: string): Promise<LoginResult & { otp: string }> {
  const body = await post(fetchImpl, base, '/login', { username, password });
  const token = stringField(body, 'token');
  const otp = stringField(body, 'otp');
  if (token === undefined || otp === undefined) throw new ParleyError('network', 'POST /login: no token/otp in the answer');
  const user = typeof body === 'object' && body !== null && 'user' in body ? stringField(body.user, 'name') : undefined;
  const result: LoginResult & { otp: string } = { token, otp, user: user ?? username };
  const expiresAt = stringField(body, 'expiresAt');
  if (expiresAt !== undefined) result.expiresAt = expiresAt;
  return result;
}

/** POST /login: resolves with the session's token. */
export async function login(fetchImpl: typeof fetch, base: string, username: string, password: string): Promise<LoginResult> {
  const { otp: _unused, ...result } = await loginWithTicket(fetchImpl, base, username, password);
  return result;
}

/** POST /logout: revokes the token (closing its sockets on every node). A token already unknown (401) counts as revoked. */
export async function logout(fetchImpl: typeof fetch, base: string, token: string): Promise<void> {
  try {
    await post(fetchImpl, base, '/logout', undefined, token);
  } catch (err) {
    if (err instanceof ParleyError && err.status === 401) return;
    throw err;
  }
}

/** The session of one client: its token, and the credentials to log in again with. */
export class Session {
  constructor(
    private readonly fetchImpl: typeof fetch,
    /** The session token (given, or from the last login); undefined once rejected or logged out. */
    public token: string | undefined,
    private readonly username: string | undefined,
    private readonly password: string | undefined,
  ) {}

  /**
   * Runs an HTTP request that needs the bearer token: with the token, or (none, or it was
   * rejected with 401) after a login with the credentials, if there are any.
   */
  async authorized<T>(base: string, run: (token: string) => Promise<T>): Promise<T> {
    if (this.token !== undefined) {
      try {
        return await run(this.token);
      } catch (err) {
        if (!(err instanceof ParleyError) || err.status !== 401 || this.username === undefined || this.password === undefined) throw err;
        this.token = undefined;
      }
    }
    if (this.username === undefined || this.password === undefined) throw new ParleyError('auth', 'No token and no username/password to log in with.');
    const { token } = await loginWithTicket(this.fetchImpl, base, this.username, this.password);
    this.token = token;
    return run(token);
  }

  /** A fresh ticket: POST /ticket with the token; on 401 (or no token) log in, if we can. */
  async ticket(base: string): Promise<string> {
    if (this.token !== undefined) {
      try {
        const otp = stringField(await post(this.fetchImpl, base, '/ticket', undefined, this.token), 'otp');
        if (otp === undefined) throw new ParleyError('network', 'POST /ticket: no otp in the answer');
        return otp;
      } catch (err) {
        if (!(err instanceof ParleyError) || err.status !== 401) throw err;
        this.token = undefined;
        if (this.username === undefined || this.password === undefined) {
          throw new ParleyError('auth', `The session token was rejected (${err.code}) and no username/password is known.`, { status: 401 });
        }
      }
    }
    if (this.username === undefined || this.password === undefined) {
      throw new ParleyError('auth', 'No token and no username/password to log in with.');
    }
    const { token, otp } = await loginWithTicket(this.fetchImpl, base, this.username, this.password);
    this.token = token;
    return otp;
  }
}

/** Errors after which retrying cannot help. */
export function isFatal(e: ParleyError): boolean {
  if (e.code === 'auth') return true;
  if (e.status === undefined) return false; // network
  return e.status === 400 || e.status === 401 || e.status === 403;
}
