/**
 * The identity seam: how Parley learns who is on the other end.
 *
 * An `Authenticator` turns a credential into an `Identity` and answers whether an identity is
 * still valid (revocation). Everything else on the server works with identities only: `/ticket`
 * mints a one-time ticket for the identity a bearer credential proves, the upgrade guard
 * (upgrade.ts) redeems the ticket and asks `stillValid` before the handshake completes, and a
 * connection carries the identity's user and session.
 *
 * Implementations: `accounts.ts` (Parley's own accounts: /register, /login, /logout, sessions in
 * the store). A new one (a JWT from the host application, say) is a new file here, a case in
 * `index.ts`, its config keys and its docs; nothing else on the server changes.
 *
 * Guarantees every implementation gives:
 * - `identify` resolves undefined for any credential that proves nothing (unknown, malformed,
 *   expired, revoked); it rejects only when its backend cannot answer (a StoreError or driver
 *   error, answered 503), never for a bad credential.
 * - An identity's `expiresAt` is when its credential stops being valid: no ticket outlives it.
 * - After `session` is revoked (on any node), `stillValid` is false for it on every node for at
 *   least as long as a ticket minted before could live, and its connections are closed (through
 *   `Sessions.revokeSession`).
 */
import type { IncomingMessage } from 'node:http';

/** Who a ticket, and then a connection, belongs to. */
export interface Identity {
  /** The user name (as the store spells it). */
  readonly user: string;
  /** An opaque id of the credential the identity was proven with: revoking it ends its connections. */
  readonly session: string;
  /** When the credential stops being valid, ms since the epoch. */
  readonly expiresAt: number;
}

/** A request to one of an authenticator's own routes. */
export interface RouteRequest {
  readonly req: IncomingMessage;
  /** The client's address (behind a trusted proxy, from X-Forwarded-For). */
  readonly ip: string;
  /** The request's JSON object body (HttpError when it is not one). */
  json(): Promise<Record<string, unknown>>;
}

/** An authenticator's route: resolves [status, JSON body], or throws an HttpError. */
export type Route = (r: RouteRequest) => Promise<[number, unknown]>;

/** What an authenticator needs of the nodes: session revocation, user removal. */
export interface Sessions {
  /** Closes the session's connections on every node; resolves how many this node closed. */
  revokeSession(session: string): number;
  /** Whether the session was revoked (on any node) recently enough that a ticket of it may live. */
  isRevoked(session: string): boolean;
  /** Whether the user was removed recently enough that a ticket of theirs may live. */
  isRemoved(user: string): boolean;
}

export interface Authenticator {
  /** Its name in logs and config. */
  readonly name: string;
  /** The form of a credential it takes: anything else is refused 401 before anything is read. */
  readonly credential: RegExp;
  /** Routes of its own, by POST path (accounts: /register, /login, /logout). */
  readonly routes: Readonly<Record<string, Route>>;
  /** The identity a bearer credential proves, or undefined (see the guarantees). */
  identify(credential: string): Promise<Identity | undefined>;
  /** Whether an identity (from a ticket minted earlier) may still open a connection now. */
  stillValid(identity: Identity): boolean;
}
