/**
 * The benchmark suite's own pieces, end to end against real servers: every target (Parley and
 * its peers, the Go one included) refuses bad credentials and delivers to every member of a
 * room; the workload code counts deliveries, latencies and the server's CPU and RSS; the /proc
 * readers agree with the process's own figures; the committed report is what the renderer makes
 * of the committed JSON; the whole suite runs every workload in its quick mode, and the large
 * idle run holds its connections over several nodes. Figures are never asserted here, only that
 * they are measured.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { io } from 'socket.io-client';
import { waitFor } from '@parley/testing/cluster';
import { idleCluster } from '../src/idle-cluster.js';
import { cpuMicros, rssBytes } from '../src/load.js';
import { parleyTarget } from '../src/parley-target.js';
import { goTarget, socketioTarget, wsTarget } from '../src/peers.js';
import { renderChart, renderMarkdown } from '../src/report.js';
import type { BenchClient, RunningServer, Target } from '../src/target.js';
import { newCounter, onStampFor, openClients, runRate, sleep } from '../src/workload.js';
import { openWire } from '../src/wire.js';

const CLIENTS = 3;
const MESSAGES = 5;

/** How the server answered an upgrade carrying a ticket it never issued. */
function bogusUpgrade(target: Target, server: RunningServer): Promise<string> {
  return new Promise((resolve) => {
    if (target === socketioTarget) {
      const socket = io(server.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { otp: 'bogus' } });
      socket.once('connect', () => {
        socket.close();
        resolve('connected');
      });
      socket.once('connect_error', (err) => resolve(err.message));
      return;
    }
    openWire(`${server.url.replace(/^http/, 'ws')}/ws?otp=bogus`, { onMessage: () => undefined }).then(
      (wire) => {
        wire.close();
        resolve('connected');
      },
      (err: Error) => resolve(/^upgrade refused: HTTP\/1\.1 (\d+)/.exec(err.message)?.[1] ?? err.message),
    );
  });
}

describe('every target: refusals, and delivery to every member of a room', () => {
  for (const target of [parleyTarget(), socketioTarget, wsTarget, goTarget]) {
    test(target.name, async () => {
      const server = await target.start('0');
      const clients: BenchClient[] = [];
      try {
        await target.prepare?.(server, CLIENTS);
        assert.equal((await fetch(`${server.url}/ticket`, { method: 'POST' })).status, 401, '/ticket without a bearer');
        assert.equal(await bogusUpgrade(target, server), target === socketioTarget ? 'unauthorized' : '401', 'an upgrade with a bogus ticket');
        const received: number[][] = [];
        for (let i = 0; i < CLIENTS; i++) {
          const got: number[] = [];
          received.push(got);
          clients.push(await target.connect(server, i, 'smoke-room', (stamp) => got.push(stamp)));
        }
        const stamps = Array.from({ length: MESSAGES }, (_, i) => 1000.5 + i);
        for (const s of stamps) clients[0]?.send(s);
        await waitFor(async () => received.every((r) => r.length >= MESSAGES), `${MESSAGES} messages at every client`, 5_000).catch(() => undefined);
        await sleep(100); // anything extra would show up as a duplicate
        for (const r of received) assert.deepEqual([...r].sort((a, b) => a - b), stamps);
      } finally {
        for (const c of clients) c.close();
        await server.stop();
      }
    });
  }
});

describe('the workload code against a real server', () => {
  let server: RunningServer;
  before(async () => {
    server = await wsTarget.start('0');
  });
  after(() => server.stop());

  test('a rate step counts every delivery, its latencies, and the server CPU and RSS from /proc', async () => {
    const counter = newCounter();
    const members = 20;
    const opened = await openClients(wsTarget, server, members, () => 'room', onStampFor(counter), 10);
    try {
      assert.equal(opened.clients.length, members);
      assert.ok(opened.seconds > 0 && opened.cpuUs > 0, 'connect time and server CPU per connect are measured');
      const r = await runRate(server, opened.clients, [0, 1], () => members, counter, { ratePerSender: 20, seconds: 1, warmup: 0.3, drain: 0.5 });
      assert.ok(r.sent >= 30 && r.sent <= 50, `two senders at 20/s for 1 s sent ${r.sent}`);
      assert.equal(r.expected, r.sent * members);
      assert.equal(r.delivered, r.expected);
      assert.equal(r.deliveredRatio, 1);
      assert.ok(r.p50 > 0 && r.p50 <= r.p99 && r.p99 <= r.max, `latencies ${r.p50} ≤ ${r.p99} ≤ ${r.max}`);
      assert.ok(r.cpuUsPerDelivery > 0 && r.serverCpuShare > 0 && r.loaderCpuShare > 0);
      assert.ok(r.rssBytes > 10 * 2 ** 20, `server RSS ${r.rssBytes}`);
      assert.equal(r.steal.length, 2);
    } finally {
      for (const c of opened.clients) c.close();
    }
  });
});

test('the /proc readers agree with the process itself', () => {
  const rss = rssBytes(process.pid);
  const own = process.memoryUsage().rss;
  assert.ok(Math.abs(rss - own) < own * 0.1, `/proc says ${rss}, the process ${own}`);
  const cpu0 = cpuMicros(process.pid);
  const until = performance.now() + 200;
  while (performance.now() < until); // 200 ms of CPU
  const spent = cpuMicros(process.pid) - cpu0;
  assert.ok(spent >= 150_000 && spent < 1_000_000, `200 ms busy read as ${spent} µs`);
});

test('the committed report is what the renderer makes of the committed results', () => {
  for (const dir of ['../../results/', '../../results/idle-rerun/']) {
    const at = (f: string) => readFileSync(new URL(dir + f, import.meta.url), 'utf8');
    const { date, machine, results } = JSON.parse(at('results.json')) as { date: string; machine: string; results: Parameters<typeof renderChart>[0] };
    assert.equal(renderMarkdown(results, machine, date), at('results.md'));
    assert.equal(renderChart(results), at('chart.svg'));
    assert.match(at('results.md'), new RegExp(`^Measured ${date.slice(0, 10)} on ${machine.replace(/[()+.*?]/g, '\\$&')}`));
  }
});

test('the whole suite in its quick mode: every workload reports its figures, and the report is written', async () => {
  const out = mkdtempSync(join(tmpdir(), 'parley-bench-quick-'));
  try {
    const run = fileURLToPath(new URL('../src/run.js', import.meta.url));
    await promisify(execFile)(process.execPath, [run, '--quick', '--targets', 'parley', '--out', out], { maxBuffer: 2 ** 26 });
    type Step = { deliveredRatio: number; p50: number; p99: number; max: number; cpuUsPerDelivery: number; rssBytes: number };
    const { results } = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { results: Record<string, Record<string, Record<string, unknown>>> };
    const measured = (s: Step, what: string) => {
      assert.ok(s.deliveredRatio > 0 && s.p50 <= s.p99 && s.p99 <= s.max && s.cpuUsPerDelivery > 0 && s.rssBytes > 0, `${what}: ${JSON.stringify(s)}`);
    };
    measured(results.fanout?.parley as unknown as Step, 'fan-out');
    for (const w of ['rise', 'rooms']) {
      const steps = results[w]?.parley?.steps as Step[] | undefined;
      assert.ok(steps !== undefined && steps.length >= 1, `${w} has steps`);
      steps.forEach((s, i) => measured(s, `${w} step ${i}`));
    }
    const idle = results.idle?.parley as { connections: number; bytesPerConnection: number; marginalBytesPerConnection: number; serverStillAnswers: boolean };
    assert.equal(idle.connections, 2000);
    assert.ok(idle.bytesPerConnection > 0 && Number.isFinite(idle.marginalBytesPerConnection));
    assert.equal(idle.serverStillAnswers, true);
    const connect = results.connect?.parley as { connectsPerSec: number; serverCpuUsPerConnect: number; serverCpuUsPerTicket: number };
    assert.ok(connect.connectsPerSec > 0 && connect.serverCpuUsPerConnect > connect.serverCpuUsPerTicket && connect.serverCpuUsPerTicket > 0);
    assert.match(readFileSync(join(out, 'results.md'), 'utf8'), /\| parley \|/);
    assert.ok(existsSync(join(out, 'chart.svg')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the large idle run, small: connections held by several nodes on Postgres and Redis, pings answered', async () => {
  const r = await idleCluster(1000, 2, 2);
  assert.equal(r.connections, 1000);
  assert.equal(r.stillOpen, 1000);
  assert.equal(r.closedDuringHold, 0);
  assert.ok(r.pingsAnswered > 0, 'heartbeats on');
  // Measured, not judged: over a 2 s hold the nodes' CPU can round to zero clock ticks, and a
  // garbage collection can shrink RSS, on a loaded machine.
  assert.ok(Number.isFinite(r.bytesPerConnection) && r.rssAfterMiB > 0, `RSS read: ${JSON.stringify(r)}`);
  assert.ok(Number.isFinite(r.idleCpuUsPerConnectionSecond) && r.idleCpuUsPerConnectionSecond >= 0);
  assert.equal(r.serverStillAnswers, true);
});
