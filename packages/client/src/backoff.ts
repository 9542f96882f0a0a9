export interface BackoffOptions {
  /** Ceiling of the first retry (attempt 0), in ms. Default 500. */
  baseMs?: number;
  /** Largest ceiling, in ms. Default 30000. */
  capMs?: number;
}

export const DEFAULT_BASE_MS = 500;
export const DEFAULT_CAP_MS = 30_000;

/**
 * Full-jitter exponential backoff: a delay drawn uniformly from
 * `[0, min(capMs, baseMs * 2 ** attempt))`, i.e. `random() * min(capMs, baseMs * 2 ** attempt)`.
 * `attempt` counts consecutive failures from 0. `random` must return a number in [0, 1).
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = options.baseMs ?? DEFAULT_BASE_MS;
  const cap = options.capMs ?? DEFAULT_CAP_MS;
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt)); // 2 ** 2000 is Infinity: capped
  return random() * ceiling;
}
