/** How a failed client event is answered: an `error` event with a stable code, never a throw. */
import type { Logger } from 'pino';
import { type ErrorCode, ErrorCodes, type Ref, type ServerEvents } from '@parley/protocol';
import type { Connection } from '../connection.js';
import { DriverError } from '../driver.js';
import { StoreError } from '../store/store.js';

/** Thrown inside handlers to answer the client with an `error` event. */
export class ClientError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string = ErrorCodes[code],
    /** The room the refused event was about, named in the `error`. */
    readonly room?: string,
  ) {
    super(message);
  }
}

/** Answers the client's event (by its `ref`) with an `error`. */
export function fail(conn: Connection, code: ErrorCode, ref: Ref | undefined, message: string = ErrorCodes[code], room?: string): void {
  const payload: ServerEvents['error'] = ref === undefined ? { code, message } : { code, message, ref };
  if (room !== undefined) payload.room = room;
  conn.send('error', payload, ref);
}

/**
 * Answers a handler's failure: a ClientError as itself, a store that is down as `unavailable`, a
 * value the store refused as `invalid_payload`, a driver whose backend is down as `unavailable`, anything else as `internal` (logged as an error).
 *
 * A store that cannot write (StoreError.backend) reports its outage itself, once, then in a
 * summary every 10 s (drivers.ts): each refused event is logged at debug only, so a node whose
 * disk is full does not write a line, let alone a stack, per message.
 */
export function answerFailure(log: Logger, conn: Connection, type: string, ref: Ref | undefined, err: unknown): void {
  if (err instanceof ClientError) {
    fail(conn, err.code, ref, err.message, err.room);
  } else if (err instanceof StoreError && err.code === 'unavailable') {
    if (err.backend !== undefined) log.debug({ user: conn.user, type, reason: err.backend }, `store unavailable: ${err.message}`);
    else log.warn({ err, user: conn.user, type }, 'store unavailable');
    fail(conn, 'unavailable', ref);
  } else if (err instanceof DriverError && err.code === 'unavailable') {
    log.warn({ err, user: conn.user, type }, `${err.concern} unavailable`);
    fail(conn, 'unavailable', ref);
  } else if (err instanceof StoreError && err.code === 'invalid') {
    // The store refused this sender's data (and stored everyone else's): retrying cannot help.
    log.warn({ err, user: conn.user, type }, 'store refused a value');
    fail(conn, 'invalid_payload', ref, 'The store cannot keep this message; it was not accepted.');
  } else {
    log.error({ err, user: conn.user, type }, 'handler failed');
    fail(conn, 'internal', ref);
  }
}
