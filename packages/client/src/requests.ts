/**
 * Requests (send, join, leave, history, and the room requests: create_room, open_direct and the
 * moderation events): each has a random ref and stays pending until the
 * server answers it. A request goes on the wire whenever a connection is live, again on every
 * new one with the same ref; a send also after `ackTimeoutMs` without an ack; a refusal with
 * `unavailable` or `rate_limited` is retried with backoff, up to MAX_RETRIES times; one with
 * `shutting_down` waits for the next connection (the server closes this one with 1001), without
 * counting as a retry.
 *
 * A send's ref is deduplicated by the server for `dedupeWindowMs` (from the welcome's limits) after
 * it first arrived: a send not acked within that window (less a margin, retryWindow) of its first
 * transmission is never transmitted again but rejected with `unconfirmed`: it may or may not have
 * been stored, and sending it again could store it twice.
 */
import type { ClientEvents, ClientEventType, ErrorCode, RoomMembership, TimelineItem } from '@parley/protocol';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { ParleyError } from './errors.js';
import type { SendResult } from './types.js';

/** Sends refused with `unavailable` or `rate_limited` are retried this many times. */
const MAX_RETRIES = 5;
const RETRYABLE: ReadonlySet<string> = new Set<ErrorCode>(['unavailable', 'rate_limited']);
/** setTimeout's longest delay (about 24.8 days): a longer deadline is checked again when this one ends. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * How long after its first transmission a send may still be transmitted again: the server's
 * dedupe window less a margin for clock drift and transit (10 %, at most a minute).
 */
export function retryWindow(dedupeWindowMs: number): number {
  return dedupeWindowMs - Math.min(dedupeWindowMs * 0.1, 60_000);
}

type Timer = ReturnType<typeof setTimeout>;

export interface Settle<T> {
  resolve: (value: T) => void;
  reject: (err: ParleyError) => void;
}

interface RequestBase {
  ref: string;
  room: string;
  /** The serialized frame, sent as is every time. */
  frame: string;
  retries: number;
  /** Ack or retry timer. */
  timer: Timer | undefined;
  /** Waiting in the outbox. */
  queued: boolean;
  /** When the frame last went on the wire. */
  sentAt: number;
  /** When the frame first went on the wire (a send's dedupe window runs from then). */
  firstSentAt: number | undefined;
  /** A send's end of the dedupe window: past it, it is rejected with `unconfirmed`. */
  deadline: Timer | undefined;
}
export interface SendRequest extends RequestBase, Settle<SendResult> {
  kind: 'send';
}
export interface JoinRequest extends RequestBase, Settle<SendResult> {
  kind: 'join';
  /** Made by the client itself (initial rooms): failures go to the 'error' event. */
  internal: boolean;
}
interface LeaveRequest extends RequestBase, Settle<void> {
  kind: 'leave';
}
interface HistoryRequest extends RequestBase, Settle<TimelineItem[]> {
  kind: 'history';
  /** Part of the connection's setup (a backfill after a room's `resumed`): goes before the connection is open. */
  setup: boolean;
}
/** `create_room`: settled by the `room_created` that answers it, with the new membership. */
export interface CreateRequest extends RequestBase, Settle<RoomMembership> {
  kind: 'create';
  visibility: 'public' | 'private';
  title: string;
}
/** `open_direct`: settled by `direct_opened`, with the direct room's name. `room` is '' until then. */
export interface DirectRequest extends RequestBase, Settle<string> {
  kind: 'direct';
  user: string;
}
/** The events a moderation request may be: each is answered by an `ack` with its room event's seq. */
export type ModerationType = 'invite' | 'kick' | 'ban' | 'unban' | 'mute' | 'unmute' | 'set_role';
export interface ModerationRequest extends RequestBase, Settle<SendResult> {
  kind: 'moderate';
  type: ModerationType;
}
export type Request = SendRequest | JoinRequest | LeaveRequest | HistoryRequest | CreateRequest | DirectRequest | ModerationRequest;

export interface RequestsPort {
  /**
   * Whether `r` may go on the wire now: joins and history once a connection is live (welcomed:
   * the connection's setup needs them), everything else once it is open (its rooms followed
   * again: the server admits a `resume`'s rooms asynchronously, and a send that overtook it
   * would be refused `not_in_room`).
   */
  live(r: Request): boolean;
  /** The server's maxMessageBytes, once known. */
  maxMessageBytes(): number | undefined;
  /** The server's dedupeWindowMs, once known. */
  dedupeWindowMs(): number | undefined;
  /** Queues a request's frame for the wire. */
  enqueue(r: Request): void;
  /** A request was settled (it may have been one the connection's setup waited for). */
  settled(ref: string): void;
  /** The current connection attempt (bumped by every new one). */
  generation(): number;
  /** When the last frame came from the server. */
  lastFrameAt(): number;
  /** Replaces the connection, presumed dead. */
  drop(): void;
}

const noop = (): void => undefined;

export function randomRef(): string {
  if (typeof crypto === 'undefined') throw new Error('@parley/client needs globalThis.crypto.getRandomValues (browsers, Node >= 20)');
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}

export class Requests {
  /** Pending requests by ref, in the order they were made. */
  private readonly pending = new Map<string, Request>();

  constructor(
    private readonly port: RequestsPort,
    private readonly ackTimeoutMs: number,
    private readonly backoff: BackoffOptions,
    private readonly random: () => number,
  ) {}

  /** Pending requests, in the order they were made. */
  values(): IterableIterator<Request> {
    return this.pending.values();
  }

  has(ref: string): boolean {
    return this.pending.has(ref);
  }

  get(ref: string): Request | undefined {
    return this.pending.get(ref);
  }

  /** Whether a join of `room` is pending (other than `except`). */
  joining(room: string, except?: Request): boolean {
    for (const r of this.pending.values()) if (r.kind === 'join' && r.room === room && r !== except) return true;
    return false;
  }

  /** Removes a request from everything that tracks it; returns it to settle. */
  settle<R extends Request>(r: R): R {
    this.pending.delete(r.ref);
    if (r.timer !== undefined) clearTimeout(r.timer);
    r.timer = undefined;
    if (r.deadline !== undefined) clearTimeout(r.deadline);
    r.deadline = undefined;
    this.port.settled(r.ref);
    return r;
  }

  send(room: string, payload: ClientEvents['send_message']): Promise<SendResult> {
    return new Promise((resolve, reject) => this.add({ ...this.base(room, 'send_message', payload), kind: 'send', resolve, reject }));
  }

  /** `internal`: made by the client itself; its failure is not a rejection (the caller reports it). */
  join(room: string, internal: boolean): Promise<SendResult> {
    const payload: ClientEvents['join'] = { room };
    return new Promise((resolve, reject) => this.add({ ...this.base(room, 'join', payload), kind: 'join', internal, resolve, reject: internal ? noop : reject }));
  }

  leave(room: string): Promise<void> {
    const payload: ClientEvents['leave'] = { room };
    return new Promise((resolve, reject) => this.add({ ...this.base(room, 'leave', payload), kind: 'leave', resolve, reject }));
  }

  history(room: string, payload: ClientEvents['history'], setup = false): Promise<TimelineItem[]> {
    return new Promise((resolve, reject) => this.add({ ...this.base(room, 'history', payload), kind: 'history', setup, resolve, reject }));
  }

  create(payload: ClientEvents['create_room']): Promise<RoomMembership> {
    return new Promise((resolve, reject) =>
      this.add({ ...this.base(payload.room, 'create_room', payload), kind: 'create', visibility: payload.visibility, title: payload.title ?? '', resolve, reject }),
    );
  }

  direct(user: string): Promise<string> {
    const payload: ClientEvents['open_direct'] = { user };
    return new Promise((resolve, reject) => this.add({ ...this.base('', 'open_direct', payload), kind: 'direct', user, resolve, reject }));
  }

  moderate<T extends ModerationType>(type: T, payload: ClientEvents[T]): Promise<SendResult> {
    return new Promise((resolve, reject) => this.add({ ...this.base(payload.room, type, payload), kind: 'moderate', type, resolve, reject }));
  }

  private base<T extends ClientEventType>(room: string, type: T, payload: ClientEvents[T]): RequestBase {
    const ref = randomRef();
    return { ref, room, frame: JSON.stringify({ type, payload, ref }), retries: 0, timer: undefined, queued: false, sentAt: 0, firstSentAt: undefined, deadline: undefined };
  }

  private add(r: Request): void {
    this.pending.set(r.ref, r);
    this.transmit(r);
  }

  /** Puts a request on the wire if a connection is live; otherwise it waits for the next one. */
  transmit(r: Request): void {
    if (!this.port.live(r) || r.queued || !this.pending.has(r.ref)) return;
    if (r.timer !== undefined) clearTimeout(r.timer);
    r.timer = undefined;
    if (r.kind === 'send' && this.unconfirmed(r)) return;
    const max = this.port.maxMessageBytes();
    if (max !== undefined && byteLength(r.frame) > max) {
      // The server would close the connection with 1009 for this frame: refuse it here.
      this.settle(r).reject(new ParleyError('message_too_long', `The frame is larger than the server's maxMessageBytes (${max}).`));
      return;
    }
    r.queued = true;
    this.port.enqueue(r);
  }

  /** A send went on the wire: without an ack in ackTimeoutMs it goes again (or the connection is replaced). */
  startAckTimer(r: SendRequest): void {
    r.sentAt = Date.now();
    if (r.firstSentAt === undefined) {
      r.firstSentAt = r.sentAt;
      this.armDeadline(r);
    }
    if (r.timer !== undefined) clearTimeout(r.timer);
    const gen = this.port.generation();
    r.timer = setTimeout(() => {
      r.timer = undefined;
      if (gen !== this.port.generation() || !this.pending.has(r.ref)) return;
      // Nothing at all from the server since the send: presume the connection dead and replace
      // it (the send goes again, same ref, on the new one). Otherwise just send it again.
      if (this.port.lastFrameAt() < r.sentAt) this.port.drop();
      else this.transmit(r);
    }, this.ackTimeoutMs);
  }

  /** Rejects `r` with `unconfirmed` if its dedupe window has passed (true then): it must not go on the wire again. */
  private unconfirmed(r: SendRequest): boolean {
    const window = this.port.dedupeWindowMs();
    if (r.firstSentAt === undefined || window === undefined || Date.now() - r.firstSentAt < retryWindow(window)) return false;
    const s = Math.round(window / 1000);
    this.settle(r).reject(new ParleyError('unconfirmed', `No ack within the server's dedupe window (${s} s): the message may or may not have been stored, and sending it again could store it twice.`));
    return true;
  }

  /** Rejects a send still unacked when its dedupe window ends (online or not). */
  private armDeadline(r: SendRequest): void {
    const window = this.port.dedupeWindowMs();
    if (window === undefined || r.firstSentAt === undefined) return;
    const left = r.firstSentAt + retryWindow(window) - Date.now();
    r.deadline = setTimeout(() => {
      r.deadline = undefined;
      if (!this.pending.has(r.ref)) return;
      if (!this.unconfirmed(r)) this.armDeadline(r); // a deadline beyond MAX_TIMER_MS, or the window grew (another server)
    }, Math.max(0, Math.min(left, MAX_TIMER_MS)));
  }

  /**
   * The server refused `r` with `code`: true when it will be sent again, after a backoff delay,
   * or (`shutting_down`) on the next connection, which does not count as a retry.
   */
  retry(r: Request, code: ErrorCode): boolean {
    if (code === 'shutting_down') {
      if (r.timer !== undefined) clearTimeout(r.timer);
      r.timer = undefined;
      return true;
    }
    if (!RETRYABLE.has(code) || r.retries >= MAX_RETRIES) return false;
    const delay = backoffDelay(r.retries, this.backoff, this.random);
    r.retries++;
    if (r.timer !== undefined) clearTimeout(r.timer);
    r.timer = setTimeout(() => {
      r.timer = undefined;
      this.transmit(r);
    }, delay);
    return true;
  }

  /**
   * The connection is gone: timers stop; requests go again on the next one (a leave too: the
   * membership is the user's, not the connection's, and only a `leave` ends it).
   */
  disconnected(): void {
    for (const r of this.pending.values()) {
      if (r.timer !== undefined) clearTimeout(r.timer);
      r.timer = undefined;
    }
  }

  /** Whether a leave of `room` is pending. */
  leaving(room: string): boolean {
    for (const r of this.pending.values()) if (r.kind === 'leave' && r.room === room) return true;
    return false;
  }

  /** Rejects everything pending with `err`. */
  rejectAll(err: ParleyError): void {
    const requests = [...this.pending.values()];
    this.pending.clear();
    for (const r of requests) {
      if (r.timer !== undefined) clearTimeout(r.timer);
      if (r.deadline !== undefined) clearTimeout(r.deadline);
      r.reject(err);
    }
  }
}
