/**
 * The router: every frame a client sends enters here. It parses, validates and limits, then
 * dispatches to the event's handler (hub/handlers/).
 *
 * Guarantees:
 * - Never throws, and never lets a handler's failure escape: each is answered with an `error`
 *   event carrying a stable code (hub/errors.ts), by the event's `ref` when it had a valid one.
 * - A handler is called only with a payload its schema accepted (schemas.ts, from the protocol).
 * - The per-connection rate limit is taken for every frame; a connection whose frames keep being
 *   refused is closed with 1008, a binary frame with 1003.
 * - Replies to one frame leave in one write (the connection is corked for the turn).
 * - From `shutDown()` on, no event is handled: each is answered `shutting_down` (by its ref), and
 *   `idle()` resolves once every event handled before has been answered.
 */
import type { Logger } from 'pino';
import { type ClientEvents, type ClientEventType, CloseCodes, type Ref } from '@parley/protocol';
import type { Connection } from '../connection.js';
import type { Metrics } from '../metrics.js';
import { eventSchemas, isClientEventType, isRef } from '../schemas.js';
import { answerFailure, fail } from './errors.js';
import type { Handler, Handlers } from './handlers/index.js';

/** Whether `payload.rooms` is an object with more than `max` own keys (without listing them all). */
function tooManyKeys(payload: unknown, max: number): boolean {
  if (typeof payload !== 'object' || payload === null || !('rooms' in payload)) return false;
  const rooms = payload.rooms;
  if (typeof rooms !== 'object' || rooms === null) return false;
  let n = 0;
  for (const k in rooms) if (Object.hasOwn(rooms, k) && ++n > max) return true;
  return false;
}

export class Router {
  private closing = false;
  /** Handlers that have not settled yet. */
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly handlers: Handlers,
    private readonly log: Logger,
    private readonly maxRoomsPerConnection: number,
    /** Counts the events refused by the per-connection limit (`parley_rate_limited_total{limit="connection"}`). */
    private readonly metrics?: Metrics,
  ) {}

  /** Entry point for every frame a client sends. Never throws. */
  handleFrame(conn: Connection, data: Buffer, isBinary: boolean): void {
    // Frames that arrive behind a close (a slow consumer's own backlog of requests) are not served.
    if (!conn.open) return;
    if (isBinary) {
      conn.close(CloseCodes.unsupported_data, 'binary frames are not supported');
      return;
    }
    const verdict = conn.take();
    conn.hold(); // replies to this event leave in one write at the end of the turn
    if (verdict === 'flood') {
      conn.close(CloseCodes.policy_violation, 'rate limit exceeded repeatedly');
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString('utf8'));
    } catch {
      fail(conn, 'bad_json', undefined);
      return;
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      fail(conn, 'bad_event', undefined);
      return;
    }
    const type: unknown = 'type' in frame ? frame.type : undefined;
    const payload: unknown = 'payload' in frame ? frame.payload : undefined;
    const rawRef: unknown = 'ref' in frame ? frame.ref : undefined;
    if (rawRef !== undefined && !isRef(rawRef)) {
      fail(conn, 'bad_event', undefined, '"ref" must be a string of 1–64 characters or a safe integer.');
      return;
    }
    const ref = rawRef;
    if (typeof type !== 'string') {
      fail(conn, 'bad_event', ref);
      return;
    }
    if (this.closing) {
      fail(conn, 'shutting_down', ref);
      return;
    }
    if (verdict === 'limited') {
      this.metrics?.rateLimited.inc({ limit: 'connection' });
      fail(conn, 'rate_limited', ref);
      return;
    }
    if (!isClientEventType(type)) {
      fail(conn, 'unknown_type', ref, `Unknown event type "${type.slice(0, 64)}".`);
      return;
    }
    // A resume names at most maxRoomsPerConnection rooms: counted before any of them is read.
    if (type === 'resume' && tooManyKeys(payload, this.maxRoomsPerConnection)) {
      fail(conn, 'too_many_rooms', ref, `A resume names at most ${this.maxRoomsPerConnection} rooms.`);
      return;
    }
    this.parseAndDispatch(conn, type, payload, ref);
  }

  /** The server is shutting down: no more events are handled (see the module doc). */
  shutDown(): void {
    this.closing = true;
  }

  /** Resolves once no handler is running (each has answered its event). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private settled = (): void => {
    if (--this.inFlight > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  };

  private parseAndDispatch<K extends ClientEventType>(conn: Connection, type: K, payload: unknown, ref: Ref | undefined): void {
    const parsed = eventSchemas[type].safeParse(payload);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue === undefined || issue.path.length === 0 ? 'payload' : issue.path.join('.');
      fail(conn, 'invalid_payload', ref, `Invalid ${type} payload: ${where}: ${issue?.message ?? 'invalid'}.`);
      return;
    }
    this.dispatch(conn, type, parsed.data, ref);
  }

  private dispatch<K extends ClientEventType>(conn: Connection, type: K, payload: ClientEvents[K], ref: Ref | undefined): void {
    const handler: Handler<K> = this.handlers[type];
    try {
      const result = handler(conn, payload, ref);
      if (result !== undefined) {
        this.inFlight++;
        result.catch((err: unknown) => answerFailure(this.log, conn, type, ref, err)).finally(this.settled);
      }
    } catch (err) {
      answerFailure(this.log, conn, type, ref, err);
    }
  }
}
