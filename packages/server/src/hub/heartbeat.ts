/**
 * The heartbeat: every connection is pinged once per pingIntervalMs, a slice at a time; one with
 * an unanswered ping older than pongTimeoutMs is destroyed. Any frame from the client also proves
 * it alive (Connection.alive).
 *
 * Pings are spread over the interval: every pingIntervalMs / slices one slice of the connections
 * (by id) is pinged, so each connection still gets one ping per interval but the node never
 * writes to all of them in one turn (pinging 10,000 connections at once stalled the event loop
 * for hundreds of milliseconds on this project's benchmark machine). The same pass destroys the
 * connections whose ping has gone unanswered for pongTimeoutMs, and closes with 4000 those that
 * stopped reading (Connection.stalled): a pong proves a client alive, not that it reads.
 */
import type { Connection } from '../connection.js';

/** The heartbeat pings one of this many slices of the connections at a time. */
export const HEARTBEAT_SLICES = 25;

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connections: ReadonlySet<Connection>,
    private readonly pingIntervalMs: number,
    private readonly pongTimeoutMs: number,
    /** Called once per interval (sweeps of per-interval state, such as typing times). */
    private readonly everyInterval: (now: number) => void = () => undefined,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    const { pingIntervalMs, pongTimeoutMs } = this;
    const slices = Math.max(1, Math.min(HEARTBEAT_SLICES, Math.floor(pingIntervalMs / 100)));
    let tick = 0;
    this.timer = setInterval(() => {
      const now = Date.now();
      const slice = tick++ % slices;
      if (slice === 0) this.everyInterval(now);
      for (const conn of this.connections) {
        const pingedAt = conn.pingedAt;
        if (pingedAt !== 0) {
          if (now - pingedAt >= pongTimeoutMs) conn.terminate('heartbeat timeout');
        } else if (conn.id % slices === slice && conn.open) {
          // Frames waiting two whole intervals without the kernel taking any: the client stopped
          // reading. Its queue is dropped.
          if (conn.stalled()) {
            conn.slowConsumer();
            continue;
          }
          conn.ping(now);
        }
      }
    }, pingIntervalMs / slices);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
