/**
 * What every pluggable driver shares (store, broker, presence, tickets, throttle, rate limiter):
 * one lifecycle, one style of callbacks, one family of errors.
 *
 * Lifecycle: construct (nothing is opened or connected), `init()` (open, connect; a network
 * backend that is down is waited for a bounded time, then the driver serves degraded and
 * reconnects by itself), `close()` (releases everything; a second call is harmless).
 *
 * Callbacks are optional `on<Event>` properties the owner sets (the server, the hub), one
 * listener each, before or after `init()`. Every driver has `onHealth` and `onBackgroundError`;
 * some have their own (the broker's `onMessage`, presence's `onExpired` and `onReturned`).
 */
export interface Driver {
  /** The implementation: `memory`, `redis`, `sqlite`, `postgres`. */
  readonly driver: string;
  init(): Promise<void>;
  close(): Promise<void>;
  /** False while the backend cannot be reached (reported per driver by /readyz). */
  readonly healthy: boolean;
  /** Called on every change of `healthy`. */
  onHealth?: ((healthy: boolean) => void) | undefined;
  /**
   * Failures of the driver's own background work, which no request sees (a presence refresh, a
   * rate limit failing open, a checkpointer thread). The server logs them. A driver reports a
   * failure that repeats (a backend that stays down) once per outage, not once per attempt.
   */
  onBackgroundError?: ((err: Error) => void) | undefined;
}

/** `unavailable`: the backend cannot be reached or did not answer in time; retry later. */
export type DriverErrorCode = 'unavailable';

/** A driver's failure: which concern (`tickets`, `throttle`…), which backend, and a stable code. */
export class DriverError extends Error {
  constructor(
    /** The concern: `tickets`, `throttle`, `rateLimiter`, `presence`, `broker`. */
    readonly concern: string,
    /** The implementation: `redis`… */
    readonly driver: string,
    readonly code: DriverErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DriverError';
  }
}

/** The backend is down or too slow: HTTP answers 503 `unavailable`, as for the store. */
export class BackendUnavailableError extends DriverError {
  constructor(concern: string, driver: string, cause: unknown) {
    super(concern, driver, 'unavailable', `${driver} ${concern}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'BackendUnavailableError';
  }
}

/** Runs a backend call; any failure becomes a BackendUnavailableError of `concern`. */
export async function guarded<T>(concern: string, driver: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new BackendUnavailableError(concern, driver, err);
  }
}

/**
 * Reports a failure that repeats once per outage: the first failure goes to `report`, the
 * following ones are counted, and the next success ends the outage (so the one after it is
 * reported again).
 */
export class OutageReporter {
  private failing = false;
  /** Failures since the outage began (the first one included). */
  failures = 0;

  constructor(private readonly report: () => ((err: Error) => void) | undefined) {}

  failed(err: Error): void {
    this.failures++;
    if (this.failing) return;
    this.failing = true;
    this.report()?.(err);
  }

  succeeded(): void {
    this.failing = false;
    this.failures = 0;
  }
}

/**
 * The driver the config names: `drivers` has one constructor per value the config key allows
 * (the compiler checks that none is missing), and only the chosen one runs.
 */
export function chooseDriver<N extends string, D>(name: N, drivers: { readonly [K in N]: () => D }): D {
  return drivers[name]();
}

/**
 * The base of the memory drivers that keep expiring entries (tickets, throttle keys, rate-limit
 * windows): this node only, always healthy, entries swept every `sweepMs` once they expire.
 */
export abstract class MemoryDriver<V> implements Driver {
  readonly driver = 'memory';
  readonly healthy = true;
  onHealth?: ((healthy: boolean) => void) | undefined;
  onBackgroundError?: ((err: Error) => void) | undefined;
  protected readonly entries = new Map<string, V>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly sweepMs: number,
    /** When an entry may be forgotten (ms since the epoch). */
    private readonly expiresAt: (entry: V) => number,
  ) {}

  async init(): Promise<void> {
    this.sweeper ??= setInterval(() => this.sweep(Date.now()), this.sweepMs).unref();
  }

  /** Entries held now (for tests of the sweep). */
  get size(): number {
    return this.entries.size;
  }

  protected sweep(now: number): void {
    for (const [k, v] of this.entries) if (this.expiresAt(v) <= now) this.entries.delete(k);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.entries.clear();
  }
}
