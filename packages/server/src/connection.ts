/**
 * One WebSocket connection (the seed's Client): its rooms, its rate limit, its bounded
 * outgoing queue and its heartbeat state. The Hub owns membership; the Connection owns its
 * socket. A slow connection is closed, never waited for.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CloseCodes, type Ref, type ServerEvents, type ServerEventType } from '@parley/protocol';
import { encode, frameText } from './frames.js';
import type { Metrics } from './metrics.js';

/** Rejected events within this window count towards closing a flooding client with 1008. */
export const FLOOD_WINDOW_MS = 10_000;
/** After a close frame is queued, a connection that does not finish closing is destroyed. */
export const CLOSE_GRACE_MS = 2_000;
/** How often a paced replay looks whether its socket has drained. */
const DRAIN_POLL_MS = 10;

export interface ConnectionLimits {
  rateLimitPerSec: number;
  rateLimitBurst: number;
  sendQueueMaxBytes: number;
}

export type RateVerdict = 'ok' | 'limited' | 'flood';

/**
 * What a connection resuming rooms holds for the resume unit (hub/replay.ts implements it): live
 * frames of the rooms it replays. The connection only frees them when it closes.
 */
export interface ReplayState {
  /** The fate of a live frame of `room` (see ReplayBuffer.offer). */
  offer(room: string, seq: number, data: Buffer, unsent: number, maxBytes: number): 'send' | 'skip' | 'held' | 'overflow';
  /** The connection no longer follows `room`. */
  forget(room: string): void;
  /** Frees every held frame. */
  drop(): void;
}

let nextId = 1;
/** Tells this process's connections apart from other nodes' (presence keys). */
const NODE = randomBytes(6).toString('base64url');

/** Event-loop utilization at or above which the Flusher counts the process as busy... */
const BUSY_ON = 0.8;
/** ...and below which it counts it as no longer busy. */
const BUSY_OFF = 0.6;
/** How often the Flusher samples event-loop utilization, ms. */
const BUSY_SAMPLE_MS = 250;

/**
 * Releases corked sockets once per event-loop turn (setImmediate), or after a write delay that
 * trades a little latency for bigger writes: `delayMs` always (opt-in), or `busyDelayMs` while
 * the event loop is busy (utilization over the last BUSY_SAMPLE_MS at or above BUSY_ON, until it
 * falls below BUSY_OFF). Under load, holding frames a few ms costs less latency than the write
 * system calls it saves cost CPU; at light load every frame still leaves in its own turn.
 */
export class Flusher {
  private pending: Connection[] = [];
  private scheduled = false;
  private busy = false;
  private elu = performance.eventLoopUtilization();
  private readonly sampler: NodeJS.Timeout | undefined;
  private readonly run = () => {
    const list = this.pending;
    this.pending = [];
    this.scheduled = false;
    for (const c of list) c.uncork();
  };

  constructor(
    private readonly delayMs = 0,
    private readonly busyDelayMs = 0,
  ) {
    if (delayMs === 0 && busyDelayMs > 0) {
      this.sampler = setInterval(() => this.sample(), BUSY_SAMPLE_MS);
      this.sampler.unref();
    }
  }

  /** The delay frames are held for now (0: released at the end of the turn). */
  get delay(): number {
    return this.delayMs > 0 ? this.delayMs : this.busy ? this.busyDelayMs : 0;
  }

  /** With a write delay every frame is held (corked) until the delay ends. */
  get delayed(): boolean {
    return this.delay > 0;
  }

  /** Reads the event-loop utilization since the last sample and updates `busy`. */
  sample(): void {
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, this.elu).utilization;
    this.elu = now;
    this.busy = u >= (this.busy ? BUSY_OFF : BUSY_ON);
  }

  add(conn: Connection): void {
    this.pending.push(conn);
    if (this.scheduled) return;
    this.scheduled = true;
    const delay = this.delay;
    if (delay > 0) setTimeout(this.run, delay);
    else setImmediate(this.run);
  }

  close(): void {
    if (this.sampler !== undefined) clearInterval(this.sampler);
  }
}

export class Connection {
  readonly id = nextId++;
  /** Cluster-wide unique key of this connection. */
  readonly key = `${NODE}:${this.id}`;
  /** Rooms this connection follows. */
  readonly rooms = new Set<string>();
  /** The room `send_message` goes to when it names none (`change_room` sets it). */
  current: string | undefined;
  /** Rooms this connection's user is muted in, while following them: until when (ms; see hub/members.ts). */
  mutes: Map<string, number> | undefined;
  /** When the last ping was sent, while it is unanswered; 0 when none is outstanding. */
  private pingSentAt = 0;
  /** The resume unit's state for this connection (hub/replay.ts), from its first `resume` on. */
  replay: ReplayState | undefined;
  /** How much the kernel had taken at the previous look (see stalled)... */
  private takenBefore = 0;
  /** ...and how many looks in a row found frames waiting and nothing taken. */
  private idleLooks = 0;
  /** Why the server closed the connection, for the disconnect log line. */
  closeReason: string | undefined;
  readonly connectedAt = Date.now();

  private tokens: number;
  private refilledAt = Date.now();
  private strikes = 0;
  private strikesSince = 0;
  private closeTimer: NodeJS.Timeout | undefined;

  /** This event-loop turn: 0 nothing written, 1 one frame written directly, 2 corked. */
  private turn: 0 | 1 | 2 = 0;
  /** Bytes written since the socket was corked this turn... */
  private corkedBytes = 0;
  /** ...and of them, those of replies to the client's own requests. */
  private repliedBytes = 0;

  constructor(
    readonly ws: WebSocket,
    /** The upgraded TCP (or TLS) socket under `ws`. */
    private readonly socket: Socket,
    private readonly flusher: Flusher,
    readonly user: string,
    /** Hash of the session token this connection was opened with. */
    readonly session: string,
    readonly ip: string,
    private readonly limits: ConnectionLimits,
    /** Counts slow-consumer closes (`parley_slow_consumer_closes_total`). */
    private readonly metrics?: Metrics,
  ) {
    this.tokens = limits.rateLimitBurst;
  }

  get open(): boolean {
    return this.ws.readyState === 1; // WebSocket.OPEN
  }

  /** The most bytes that may wait to be sent to this connection. */
  get sendQueueMaxBytes(): number {
    return this.limits.sendQueueMaxBytes;
  }

  /** When the outstanding ping was sent, or 0 when none is (see hub/heartbeat.ts). */
  get pingedAt(): number {
    return this.pingSentAt;
  }

  /** Pings the client; `alive` (its pong) answers it. */
  ping(now = Date.now()): void {
    this.pingSentAt = now;
    this.ws.ping();
  }

  /** The client proved alive: a pong. */
  alive(): void {
    this.pingSentAt = 0;
  }

  /**
   * Token bucket: `rateLimitPerSec` sustained, `rateLimitBurst` at once. A connection whose
   * events keep being refused (more than `rateLimitBurst` refusals within FLOOD_WINDOW_MS) is a
   * flood and gets closed with 1008.
   */
  take(now = Date.now()): RateVerdict {
    const { rateLimitPerSec, rateLimitBurst } = this.limits;
    this.tokens = Math.min(rateLimitBurst, this.tokens + ((now - this.refilledAt) * rateLimitPerSec) / 1000);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 'ok';
    }
    if (now - this.strikesSince > FLOOD_WINDOW_MS) {
      this.strikes = 0;
      this.strikesSince = now;
    }
    this.strikes++;
    return this.strikes > rateLimitBurst ? 'flood' : 'limited';
  }

  /**
   * Writes a complete WebSocket frame (see frames.ts). The queue is bounded: when more than
   * sendQueueMaxBytes wait, the connection is closed with 4000 (slow_consumer) and false is
   * returned. Writes are corked and released once per event-loop turn by the Flusher, so all the
   * frames a socket gets in one turn leave in one write system call.
   *
   * Writing to the socket directly is safe: permessage-deflate is off, so ws never holds frames
   * back in a queue of its own; its pings and close frames go through the same socket in order.
   */
  sendFrame(frame: Buffer, reply = false): boolean {
    if (this.ws.readyState !== 1) return false;
    const socket = this.socket;
    // What earlier turns left unsent counts. A burst of a room's messages in one turn does not
    // (it is not the client's doing, and most of it leaves when the turn ends: uncork checks
    // what stays); the replies to the client's own requests in this turn do: 39 history pages
    // asked for in one TCP read must not pass the bound. A frame alone may be larger than the
    // bound (it cannot be split), not one behind others.
    const waiting = socket.writableLength - this.corkedBytes + this.repliedBytes;
    if (waiting > 0 && waiting + (reply ? frame.length : 0) > this.limits.sendQueueMaxBytes) {
      this.slowConsumer();
      return false;
    }
    if (reply) this.repliedBytes += frame.length;
    // The first frame of a turn goes straight out (one write, no writev); from the second on,
    // the socket is corked and the rest of the turn's frames leave together when it ends.
    if (this.turn === 0 && !this.flusher.delayed) {
      this.turn = 1;
      this.flusher.add(this);
      socket.write(frame);
      return true;
    }
    this.hold();
    this.corkedBytes += frame.length;
    socket.write(frame);
    return true;
  }

  /**
   * Holds this turn's frames (corked) until the turn ends, so they leave in one write: used
   * from the second frame of a turn on, and before handling a client event, whose replies
   * (`joined` + `presence`, say) then go out together.
   */
  hold(): void {
    if (this.turn === 2) return;
    if (this.turn === 0) this.flusher.add(this);
    this.turn = 2;
    this.socket.cork();
  }

  /**
   * For a socket the upgrade guard corked before the handshake: the 101 response and this
   * turn's first frames (`welcome`, `joined`, `presence`) leave in one write when the turn ends.
   */
  adoptCork(): void {
    this.turn = 2;
    this.flusher.add(this);
  }

  /** Frames and writes one serialized event (a reply to this connection only). */
  sendRaw(text: string): boolean {
    return this.sendFrame(frameText(text), true);
  }

  /** Called by the Flusher at the end of a turn: lets the corked frames go. */
  uncork(): void {
    const corked = this.turn === 2;
    this.turn = 0;
    this.repliedBytes = 0;
    if (!corked) return;
    this.corkedBytes = 0;
    this.socket.uncork();
    // What the kernel did not take at the end of the turn waits in memory: past the bound, the
    // client is not keeping up, whether or not another frame comes for it.
    if (this.socket.writableLength > this.limits.sendQueueMaxBytes) this.slowConsumer();
  }

  send<K extends ServerEventType>(type: K, payload: ServerEvents[K], ref?: Ref): boolean {
    return this.sendRaw(encode(type, payload, ref));
  }

  /** Every byte written to this connection that the kernel has not taken yet, this turn's included. */
  get unsentBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * Resolves true once fewer than `bytes` wait to be sent; false if the connection closed, or if
   * `timeoutMs` passed without that (a client that takes nothing in). Used to pace a replay by
   * the socket, so a long resume is written as fast as the client reads it, never faster.
   */
  async drained(bytes: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.open && this.socket.writableLength > bytes) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, DRAIN_POLL_MS));
    }
    return this.open;
  }

  /**
   * Whether frames have been waiting for two calls in a row without the kernel taking a byte of
   * them: a client that stopped reading (while it still answers pings). Called once per ping
   * interval by the heartbeat.
   */
  stalled(): boolean {
    // Frames of this turn still corked (a write delay) were not offered to the kernel yet.
    if (this.turn === 2) return false;
    const waiting = this.socket.writableLength;
    // Bytes the kernel has taken: ws's own writes (the 101, pings) included. A write counts once
    // it completes, and a turn's frames leave in one write: a slow client reading one big write
    // shows no progress for a while, hence two whole intervals before it counts as stalled.
    const taken = this.socket.bytesWritten - waiting;
    this.idleLooks = waiting > 0 && taken <= this.takenBefore ? this.idleLooks + 1 : 0;
    this.takenBefore = taken;
    return this.idleLooks >= 2;
  }

  /** Closes the connection with 4000: it does not keep up. The frames held for its replays go at once. */
  slowConsumer(): void {
    if (this.ws.readyState !== 1) return;
    this.metrics?.slowConsumerCloses.inc();
    this.replay?.drop();
    this.close(CloseCodes.slow_consumer, 'slow consumer');
  }

  /** Starts the closing handshake; destroys the socket if it does not complete in time. */
  close(code: number, reason: string): void {
    if (this.closeTimer !== undefined || this.ws.readyState > 1) return;
    this.closeReason ??= reason;
    this.ws.close(code, reason);
    this.closeTimer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  /** Destroys the socket at once (dead peer: a close frame would never be read). */
  terminate(reason: string): void {
    this.closeReason ??= reason;
    this.ws.terminate();
  }

  /** Called by the Hub once the socket is closed. */
  disposed(): void {
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer);
    this.replay?.drop();
  }
}
