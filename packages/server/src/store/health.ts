/**
 * Whether a store can write, learnt from its writes: the first write that fails with a backend
 * error (a full disk, a read-only file or database, an I/O error, a database that is down or
 * does not answer in time) makes it unhealthy, and only a write that succeeds makes it healthy
 * again. Reads prove nothing (a full or read-only disk still reads). So that readiness comes
 * back without user traffic, a cheap write probe (each store's own: one upsert of a one-row
 * `health` table) runs every PROBE_DOWN_MS while unhealthy, and every PROBE_UP_MS while healthy
 * when no other write succeeded meanwhile (a store that went bad while nobody wrote is noticed
 * too). One probe at a time.
 *
 * The failure is kept for /readyz (which driver, which reason) and the log (drivers.ts): what
 * went wrong first, and how many operations were refused since, per reason.
 */
import { messageOf } from '../failure.js';

/** How often the probe runs while the store cannot write, ms. */
export const PROBE_DOWN_MS = 1000;
/** How often the probe runs while the store is healthy and nothing else wrote, ms. */
export const PROBE_UP_MS = 10_000;

/** Why a store cannot write, while it cannot. */
export interface StoreFailure {
  /** The backend's code of the first failure: `SQLITE_FULL`, `53100`, `ECONNREFUSED`, `query_timeout`… */
  readonly reason: string;
  /** Its message. */
  readonly message: string;
  /** When it happened, ms since the epoch. */
  readonly since: number;
  /** Writes refused since then (the first included; a batch counts its messages; the probe's failures do not count), per reason. */
  readonly refused: ReadonlyMap<string, number>;
}

export class StoreHealth {
  private current: { reason: string; message: string; since: number; refused: Map<string, number> } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private running = false;
  /** When a write last succeeded (a probe's included). */
  private wroteAt = Date.now();

  constructor(
    /** One cheap write; rejects with the backend's error when it cannot write. */
    private readonly probe: () => Promise<void>,
    /** Reads the backend's code off a failed probe (undefined: not a backend failure). */
    private readonly reasonOf: (err: unknown) => string | undefined,
    /** Called on every change of `healthy`. */
    private readonly changed: (healthy: boolean) => void,
    private readonly intervals: { downMs: number; upMs: number } = { downMs: PROBE_DOWN_MS, upMs: PROBE_UP_MS },
  ) {}

  get healthy(): boolean {
    return this.current === undefined;
  }

  get failure(): StoreFailure | undefined {
    return this.current;
  }

  /**
   * Starts the probe once the store opened: a first probe at once (a store that opens on a full
   * or read-only disk starts unhealthy, and serves what it can), then on its schedule.
   */
  async start(): Promise<void> {
    this.running = true;
    await this.tick(true);
  }

  /** Stops the probe (the store closes). */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * An operation failed with a backend error (`reason`: the backend's code); `refused`: the
   * writes it refused (a batch's messages; 0 for the probe).
   */
  failed(reason: string, err: unknown, refused = 1): void {
    const current = this.current;
    if (current !== undefined) {
      if (refused > 0) current.refused.set(reason, (current.refused.get(reason) ?? 0) + refused);
      return;
    }
    this.current = { reason, message: messageOf(err), since: Date.now(), refused: new Map(refused > 0 ? [[reason, refused]] : []) };
    this.schedule();
    this.changed(false);
  }

  /**
   * A store's operation failed: `e` is its wrapped error (StoreError), `err` the backend's. When
   * `e` names a backend failure (`backend`), it counts as `failed`; returns `e` (to throw).
   */
  refused<E extends { readonly backend?: string | undefined }>(e: E, err: unknown, writes = 1): E {
    if (e.backend !== undefined) this.failed(e.backend, err, writes);
    return e;
  }

  /** A write succeeded. */
  wrote(): void {
    this.wroteAt = Date.now();
    if (this.current === undefined) return;
    this.current = undefined;
    this.schedule();
    this.changed(true);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.running) return;
    this.timer = setTimeout(() => void this.tick(), this.healthy ? this.intervals.upMs : this.intervals.downMs);
    this.timer.unref();
  }

  private async tick(now = false): Promise<void> {
    this.timer = undefined;
    if (this.probing || !this.running) return;
    // Healthy and written to lately: that write was the probe.
    if (!now && this.healthy && Date.now() - this.wroteAt < this.intervals.upMs) return this.schedule();
    this.probing = true;
    try {
      await this.probe();
      if (this.running) this.wrote();
    } catch (err) {
      const reason = this.reasonOf(err);
      if (reason !== undefined && this.running) this.failed(reason, err, 0);
    } finally {
      this.probing = false;
      if (this.timer === undefined) this.schedule();
    }
  }
}
