/**
 * The fault test of issue 15: three Parley processes on Postgres (through a TCP proxy) and a
 * redis-server of their own, eleven SDK clients spread over the nodes sending and receiving
 * across them all along, and a schedule of real faults, one test each: kill -9 of a node, Redis
 * killed and restarted, a node started while Redis is down (D1), a single lost publication in a
 * quiet room (D3), Postgres made unreachable, SIGTERM under traffic, a receiver that stops
 * reading. After each fault every member must catch up (every stored message of its rooms).
 * At the end: every acked message is stored exactly once with its text, every member holds every
 * stored message of its rooms after its join once and in order (directly, by resume, or from
 * history after a gap), every send was acked or refused with a code, no ack came before its own
 * message, and the metrics counted what happened. The schedule is @parley/testing's FaultRun,
 * which `npm run soak` runs for longer.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ParleyClient } from '@parley/client';
import { FaultRun } from '@parley/testing/fault-run';

describe('faults: 3 nodes on Postgres and their own Redis, SDK clients across them, a fault schedule', { timeout: 240_000 }, () => {
  let run: FaultRun;
  before(async () => {
    run = await FaultRun.start({
      client: (s) =>
        new ParleyClient({ url: s.urls, token: s.token, username: s.username, password: s.password, rooms: [], WebSocket: s.wire.WebSocket, reconnect: { baseMs: 100, capMs: 1000 } }),
      intervalMs: 700,
    });
  });
  after(async () => {
    await run?.stop();
  });

  test('kill -9 of a node mid-traffic, restarted: its clients fail over, everyone catches up', async () => {
    await run.killNode(2);
  });

  test('Redis killed for 5 s and restarted under traffic: delivery goes on without it, everyone catches up', async () => {
    await run.redisOutage(5000);
  });

  test('D1 in the schedule: a node started while Redis is down gets its room subscription once Redis is back', async () => {
    await run.nodeDuringOutage();
  });

  test('D3 in the schedule: a single lost publication in a quiet room reaches the other node with no further message', async () => {
    const { by } = await run.lostPublication();
    assert.ok(by === 'name' || by === 'local port');
  });

  test('Postgres unreachable for 3 s: sends are refused `unavailable` and retried by the SDK, nothing acked is lost', async () => {
    const { unavailable } = await run.postgresCut(3000);
    assert.ok(unavailable > 0);
  });

  test('SIGTERM of a node under traffic: it exits 0, its clients move, every send ends acked or refused', async () => {
    await run.sigterm(1);
  });

  test('a receiver that stops reading is closed (4000 or 1006) and recovers everything by resume', async () => {
    const { code } = await run.stalledReader(10_000);
    assert.ok(code !== undefined);
  });

  test('invariants: every acked message stored once, every member got every stored message once and in order, every send answered', async () => {
    const report = await run.invariants();
    console.log(`faults: ${run.summary()}; stored ${report.stored}; refused but stored ${report.refusedButStored}; gaps ${report.gaps}, filled ${report.filled}`);
    assert.deepEqual(report.violations, []);
    assert.ok(report.acked > 0 && report.stored >= report.acked);
  });

  test('the metrics counted what happened (GET /metrics of every node at every mark)', () => {
    assert.deepEqual(run.metricsViolations(), []);
  });
});
