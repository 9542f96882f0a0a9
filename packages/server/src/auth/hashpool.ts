/**
 * Password hashing with bounded concurrency. scrypt takes about 50 ms and 32 MiB per call on a
 * libuv thread; forty sign-ups at once used to take every thread and delay logins by seconds.
 * Here at most `concurrency` hashes run at once, checks of a login's password go before new
 * accounts' hashes, sign-ups may hold at most one slot (so a login never waits for more than
 * the hashes already running), and the queue is bounded: beyond `maxQueued` waiting calls,
 * `PoolFullError` (the route answers 503 with Retry-After).
 */
import { availableParallelism } from 'node:os';
import { hashPassword, verifyPassword } from './password.js';

/** Hashes at once: one per core, at most 4 (libuv's default thread pool, shared with file I/O). */
const DEFAULT_CONCURRENCY = Math.max(1, Math.min(4, availableParallelism()));

export class PoolFullError extends Error {
  constructor() {
    super('too many password checks are waiting');
    this.name = 'PoolFullError';
  }
}

interface Job {
  run: () => Promise<void>;
}

export class HashPool {
  private running = 0;
  private runningLow = 0;
  private readonly high: Job[] = [];
  private readonly low: Job[] = [];
  /** scrypt calls made (observability and tests). */
  hashes = 0;

  constructor(
    private readonly concurrency = DEFAULT_CONCURRENCY,
    private readonly maxQueued = 256,
  ) {}

  /** Checks a password (a login): before every waiting sign-up. */
  verify(password: string, encoded: string): Promise<boolean> {
    return this.enqueue(this.high, () => verifyPassword(password, encoded));
  }

  /** Hashes a new password (a sign-up, a new account): after every waiting login. */
  hash(password: string): Promise<string> {
    return this.enqueue(this.low, () => hashPassword(password));
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.high.length + this.low.length;
  }

  private enqueue<T>(queue: Job[], fn: () => Promise<T>): Promise<T> {
    if (this.queued >= this.maxQueued) return Promise.reject(new PoolFullError());
    return new Promise<T>((resolve, reject) => {
      queue.push({
        run: () => {
          this.hashes++;
          return fn().then(resolve, reject);
        },
      });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.concurrency) {
      const fromHigh = this.high.length > 0;
      if (!fromHigh && (this.low.length === 0 || this.runningLow >= 1)) return;
      const job = (fromHigh ? this.high : this.low).shift() as Job;
      this.running++;
      if (!fromHigh) this.runningLow++;
      void job.run().finally(() => {
        this.running--;
        if (!fromHigh) this.runningLow--;
        this.pump();
      });
    }
  }
}
