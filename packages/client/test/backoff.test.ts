import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from '../src/index.js';

test('backoffDelay: full jitter in [0, min(cap, base * 2^attempt))', () => {
  const opts = { baseMs: 100, capMs: 5000 };
  // random = 0: always 0 (full jitter may retry at once).
  for (let a = 0; a < 20; a++) assert.equal(backoffDelay(a, opts, () => 0), 0);
  // random = 0.5: half the ceiling, which doubles per attempt until capped.
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(a, opts, () => 0.5)),
    [50, 100, 200, 400, 800, 1600, 2500, 2500],
  );
  // random just below 1: just below the ceiling, never at or above it.
  for (let a = 0; a < 12; a++) {
    const ceiling = Math.min(5000, 100 * 2 ** a);
    const d = backoffDelay(a, opts, () => 0.999);
    assert.ok(d < ceiling && d >= ceiling * 0.998, `attempt ${a}: ${d} vs ceiling ${ceiling}`);
  }
  // Large attempts stay capped (2 ** 5000 is Infinity) and finite.
  for (const a of [50, 1023, 1024, 5000, Number.MAX_SAFE_INTEGER]) {
    assert.equal(backoffDelay(a, opts, () => 0.5), 2500);
    assert.ok(Number.isFinite(backoffDelay(a, opts, () => 0.999)));
  }
  // Defaults: base 500, cap 30000.
  assert.equal(backoffDelay(0, {}, () => 0.5), 250);
  assert.equal(backoffDelay(3, {}, () => 0.5), 2000);
  assert.equal(backoffDelay(100, {}, () => 0.5), 15_000);
  // Math.random by default: within bounds.
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(i % 10, opts);
    assert.ok(d >= 0 && d < Math.min(5000, 100 * 2 ** (i % 10)));
  }
});
