/**
 * Parley's own accounts: users with passwords in the store, bearer tokens for sessions.
 *
 * - `/register` signs up (throttled per address; a taken or removed name is refused before any
 *   hashing; every hash waits for a slot of the hash pool behind every login).
 * - `/login` checks a password (throttled per name + address and per address, counted before
 *   the check) and answers a session token and a first ticket.
 * - `/logout` deletes the session and revokes it on every node (its sockets close with 4500).
 * - A bearer token identifies its session while it is stored and not expired.
 */
import type { Logger } from 'pino';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, normalizeUserName } from '@parley/protocol';
import type { Config } from '../config.js';
import type { HashPool } from '../auth/hashpool.js';
import { dummyHash, normalizePassword } from '../auth/password.js';
import { newSecret, sha256 } from '../auth/tokens.js';
import type { Tickets } from '../tickets/index.js';
import { HttpError } from '../http/errors.js';
import { bearer } from '../http/request.js';
import type { Throttle, ThrottlePolicy } from '../throttle/index.js';
import { StoreError, type Store, type UserRecord } from '../store/store.js';
import type { Authenticator, Identity, Route, RouteRequest, Sessions } from './identity.js';

/** Login attempts from one address may be this many times loginMaxFailures (shared NATs). */
const IP_FAILURE_FACTOR = 4;
/** The first throttle delay, once an attempt's free allowance is used; it doubles from there. */
const THROTTLE_BASE_MS = 1000;
/** A session token as this server mints them (newSecret: 32 bytes, base64url). */
export const SESSION_TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

/** `free` attempts, then delays doubling from THROTTLE_BASE_MS up to the window, which a key is remembered for. */
const throttlePolicy = (free: number, windowMs: number): ThrottlePolicy => ({ free, windowMs, baseMs: THROTTLE_BASE_MS, maxMs: windowMs });

/** 429 too_many_attempts with Retry-After (whole seconds, at least 1). */
const tooManyAttempts = (waitMs: number, message: string): HttpError =>
  new HttpError('too_many_attempts', message, { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) });

export interface AccountsDeps {
  config: Config;
  store: Store;
  tickets: Tickets;
  /** Login and sign-up attempts (see throttle/throttle.ts). */
  throttle: Throttle;
  /** Every password hash and check goes through it (bounded, logins first). */
  hashes: HashPool;
  sessions: Sessions;
  log: Logger;
}

export class Accounts implements Authenticator {
  readonly name = 'accounts';
  readonly credential = SESSION_TOKEN;
  readonly routes: Readonly<Record<string, Route>>;

  constructor(private readonly d: AccountsDeps) {
    this.routes = {
      '/register': (r) => this.register(r),
      '/login': (r) => this.login(r),
      '/logout': (r) => this.logout(r),
    };
  }

  async identify(credential: string): Promise<Identity | undefined> {
    if (!SESSION_TOKEN.test(credential)) return undefined;
    const s = await this.d.store.getSession(sha256(credential), Date.now());
    return s === undefined ? undefined : { user: s.user, session: s.tokenHash, expiresAt: s.expiresAt };
  }

  stillValid(identity: Identity): boolean {
    return !this.d.sessions.isRevoked(identity.session) && !this.d.sessions.isRemoved(identity.user);
  }

  /** Sign-up (see the module doc). */
  private async register(r: RouteRequest): Promise<[number, unknown]> {
    const { config, store } = this.d;
    if (config.registration === 'closed') throw new HttpError('registration_closed');
    const { username, password } = credentials(await r.json());
    const wait = await this.d.throttle.attempt(`register:a:${r.ip}`, throttlePolicy(config.registerMaxPerAddress, config.registerWindowMs));
    if (wait > 0) throw tooManyAttempts(wait, 'Too many sign-ups from this address; retry after the Retry-After delay.');
    if (password.length < MIN_PASSWORD_LENGTH) throw new HttpError('weak_password');
    if (await store.nameTaken(username)) throw new HttpError('username_taken');
    try {
      await store.createUser(username, await this.d.hashes.hash(password));
    } catch (err) {
      if (err instanceof StoreError && err.code === 'conflict') throw new HttpError('username_taken');
      throw err;
    }
    this.d.log.info({ user: username, ip: r.ip }, 'user registered');
    return [201, { user: { name: username } }];
  }

  /**
   * Login, throttled per user name + address and per address (OWASP): both counts are taken
   * before the password is checked, so concurrent guesses cannot slip past them, and a guesser
   * elsewhere can never lock the owner out. A success ends the delays of its name + address and
   * gives its attempt back to the address.
   */
  private async login(r: RouteRequest): Promise<[number, unknown]> {
    const { config, store, tickets, throttle } = this.d;
    const { username, password, rawPassword } = credentials(await r.json());
    const addressKey = `login:a:${r.ip}`;
    const pairKey = `login:u:${username.toLowerCase()}:${r.ip}`;
    const addressWait = await throttle.attempt(addressKey, throttlePolicy(config.loginMaxFailures * IP_FAILURE_FACTOR, config.loginWindowMs));
    if (addressWait > 0) throw tooManyAttempts(addressWait, 'Too many login attempts from this address; retry after the Retry-After delay.');
    const pairWait = await throttle.attempt(pairKey, throttlePolicy(config.loginMaxFailures, config.loginWindowMs));
    if (pairWait > 0) {
      await throttle.refund(addressKey);
      throw tooManyAttempts(pairWait, 'Too many login attempts for this user from this address; retry after the Retry-After delay.');
    }

    let user: UserRecord | undefined;
    let ok: boolean;
    try {
      user = await store.getUser(username);
      const hash = user?.passwordHash ?? (await dummyHash());
      ok = await this.d.hashes.verify(password, hash);
      // Accounts made before passwords were normalized were hashed from the password as typed.
      if (!ok && user !== undefined && rawPassword !== password) ok = await this.d.hashes.verify(rawPassword, hash);
    } catch (err) {
      // Not the client's guess that failed: its attempts are given back.
      await Promise.all([throttle.refund(addressKey), throttle.refund(pairKey)]).catch(() => undefined);
      throw err;
    }
    if (user === undefined || !ok) {
      this.d.log.info({ user: username, ip: r.ip }, 'login failed');
      throw new HttpError('invalid_credentials');
    }
    await Promise.all([throttle.reset(pairKey), throttle.refund(addressKey)]);
    const now = Date.now();
    const token = newSecret();
    const record = { tokenHash: sha256(token), user: user.name, expiresAt: now + config.tokenTtlMs };
    await store.createSession(record);
    const otp = await tickets.issue({ user: record.user, session: record.tokenHash, expiresAt: record.expiresAt });
    return [200, { token, otp, user: { name: user.name }, expiresAt: new Date(now + config.tokenTtlMs).toISOString() }];
  }

  private async logout(r: RouteRequest): Promise<[number, unknown]> {
    const session = await this.identify(bearer(r.req, SESSION_TOKEN));
    if (session === undefined) throw unknownToken();
    await this.d.store.deleteSession(session.session);
    const closed = this.d.sessions.revokeSession(session.session);
    this.d.log.info({ user: session.user, closed }, 'logout');
    return [200, { ok: true }];
  }
}

/** 401 for a well-formed credential that proves nothing. */
export const unknownToken = (): HttpError =>
  new HttpError('unauthorized', 'The token is unknown, revoked or expired.', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });

/** The body's credentials: the name normalized (NFKC), the password normalized (NFC) and as sent. */
function credentials(body: Record<string, unknown>): { username: string; password: string; rawPassword: string } {
  const { username: rawName, password: rawPassword } = body;
  if (typeof rawName !== 'string' || typeof rawPassword !== 'string') {
    throw new HttpError('bad_request', 'The body must be {"username": string, "password": string}.');
  }
  const username = normalizeUserName(rawName);
  if (username === undefined) throw new HttpError('invalid_username');
  if (rawPassword.length > MAX_PASSWORD_LENGTH) throw new HttpError('bad_request', `Passwords are at most ${MAX_PASSWORD_LENGTH} characters.`);
  const password = normalizePassword(rawPassword);
  if (password === undefined) throw new HttpError('bad_request', 'The password is not valid Unicode text (it holds a lone surrogate).');
  return { username, password, rawPassword };
}
