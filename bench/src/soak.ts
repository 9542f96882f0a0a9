/**
 * The soak: the fault test's schedule (@parley/testing's FaultRun) for longer, with the same
 * invariants at the end. Not part of `npm test`.
 *
 *   npm run soak [-- --rounds 5 --members 12 --interval 400]
 *
 * Round 1 starts a fourth node while Redis is down (D1, once: the node stays in the cluster);
 * every round then kills a node with SIGKILL, kills Redis for longer, loses a publication, cuts
 * Postgres, sends SIGTERM to a node and stalls a reader, each fault followed by a catch-up of
 * every member. Exits 1 if any fault was not handled, an invariant failed, or the metrics did
 * not count what happened.
 */
import { parseArgs } from 'node:util';
import { ParleyClient } from '@parley/client';
import { FaultRun } from '@parley/testing/fault-run';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    members: { type: 'string', default: '12' },
    interval: { type: 'string', default: '400' },
  },
});

const started = Date.now();
const say = (line: string): void => console.log(`[soak ${((Date.now() - started) / 1000).toFixed(0)} s] ${line}`);

const run = await FaultRun.start({
  client: (s) => new ParleyClient({ url: s.urls, token: s.token, username: s.username, password: s.password, rooms: [], WebSocket: s.wire.WebSocket, reconnect: { baseMs: 100, capMs: 2000 } }),
  members: Number(values.members),
  intervalMs: Number(values.interval),
  log: say,
});

const failures: string[] = [];
const attempt = async (what: string, fault: () => Promise<unknown>): Promise<void> => {
  try {
    await fault();
  } catch (err) {
    failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    say(`FAILED ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
};

try {
  const rounds = Number(values.rounds);
  for (let r = 1; r <= rounds; r++) {
    say(`round ${r} of ${rounds}`);
    if (r === 1) await attempt('D1 (node started during an outage)', () => run.nodeDuringOutage());
    await attempt(`round ${r}: kill -9`, () => run.killNode(r % 3));
    await attempt(`round ${r}: Redis outage`, () => run.redisOutage(5000 + 2000 * (r % 3)));
    await attempt(`round ${r}: lost publication`, () => run.lostPublication());
    await attempt(`round ${r}: Postgres cut`, () => run.postgresCut(2000 + 1000 * (r % 3)));
    await attempt(`round ${r}: SIGTERM`, () => run.sigterm((r + 1) % 3));
    await attempt(`round ${r}: stalled reader`, () => run.stalledReader(8000));
  }
  const report = await run.invariants();
  say(`${run.summary()}; stored ${report.stored}; refused but stored ${report.refusedButStored}; gaps ${report.gaps}, filled ${report.filled}`);
  for (const v of report.violations) failures.push(`invariant: ${v}`);
  for (const v of run.metricsViolations()) failures.push(`metrics: ${v}`);
} finally {
  await run.stop();
}

if (failures.length > 0) {
  console.log(`soak: ${failures.length} failure(s):\n${failures.map((f) => `- ${f}`).join('\n')}`);
  process.exit(1);
}
console.log('soak: every fault handled, every invariant held, the metrics counted what happened');
process.exit(0);
