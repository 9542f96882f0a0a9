import { type CloseCodeName, CloseCodes, type ErrorCode, type HttpErrorCode } from '@parley/protocol';

/**
 * Codes a ParleyError may carry:
 * - an `ErrorCode` from an `error` event (`not_in_room`, `message_too_long`, …);
 * - an `HttpErrorCode` from an HTTP error body (`invalid_credentials`, `username_taken`, …);
 * - a `CloseCodeName` when the server closed the connection for good (`session_revoked`, …);
 * - `closed`: the client was closed (close()) before the request completed;
 * - `auth`: the token was rejected and no username/password is known to log in again;
 * - `network`: an HTTP request failed (no answer, or not JSON);
 * - `unreachable`: `reconnect.maxAttempts` consecutive attempts failed;
 * - `unconfirmed`: a send got no ack within the server's dedupe window (`dedupeWindowMs`) of its
 *   first transmission. It may or may not have been stored; the window has passed, so sending it
 *   again could store it twice, and the SDK does not.
 */
export type ParleyErrorCode = ErrorCode | HttpErrorCode | CloseCodeName | 'closed' | 'auth' | 'network' | 'unreachable' | 'unconfirmed';

export class ParleyError extends Error {
  override readonly name = 'ParleyError';
  readonly code: ParleyErrorCode;
  /** HTTP status, for errors from an HTTP request. */
  readonly status?: number;
  /** WebSocket close code, for errors caused by a close. */
  readonly closeCode?: number;
  /** For an HTTP error with a Retry-After header (429, 503): the delay it asks for, in ms. */
  readonly retryAfterMs?: number;

  constructor(code: ParleyErrorCode, message?: string, extra: { status?: number; closeCode?: number; retryAfterMs?: number } = {}) {
    super(message ?? code);
    this.code = code;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }
}

const isCloseCodeName = (name: string): name is CloseCodeName => Object.prototype.hasOwnProperty.call(CloseCodes, name);

/** The name of a Parley close code (`session_revoked` for 4500), if it has one. */
export function closeCodeName(code: number): CloseCodeName | undefined {
  for (const [name, value] of Object.entries(CloseCodes)) if (value === code && isCloseCodeName(name)) return name;
  return undefined;
}
