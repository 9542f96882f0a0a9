/**
 * The benchmark suite: Parley side by side with Socket.IO 4, a bare `ws` server and a Go
 * gorilla/websocket server, in one run. Servers on core 0, this load generator on core 1.
 *
 *   npm run bench                          # everything (about 45 minutes)
 *   npm run bench -- --workloads fanout,idle --targets parley,ws --quick
 *
 * Writes bench/results/results.json, bench/results/results.md and bench/results/chart.svg.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { idleCluster } from './idle-cluster.js';
import { cpuMicros, rssBytes } from './load.js';
import { parleyTarget } from './parley-target.js';
import { goTarget, socketioTarget, wsTarget } from './peers.js';
import type { RunningServer, Target } from './target.js';
import { pct, renderChart, renderMarkdown, stolen } from './report.js';
import { inPool, newCounter, onStampFor, openClients, passes, probeAlive, runRate, SETTLE_MS, sleep, type RateResult } from './workload.js';

const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: 'parley,parley-delay10,ws,socketio,go' },
    // Also known: idle-members, connect-members (the idle and connect workloads with every
    // account a member of --memberships rooms; not in the default run).
    workloads: { type: 'string', default: 'fanout,rise,rooms,idle,connect' },
    memberships: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    // This machine's hard limit on open files is 20,000 per process (prlimit), so one server
    // process cannot hold more than about 19,000 sockets: every server's large idle run holds
    // that many, and Parley's 100,000 are held by several nodes (idle-cluster.ts).
    'idle-max': { type: 'string', default: '19000' },
    'idle-cluster': { type: 'string', default: '100000' },
    'idle-cluster-nodes': { type: 'string', default: '6' },
    // Rates to step through (per sender per second), lowest first; a workload stops at the first failing step.
    'rise-rates': { type: 'string', default: '5,7,10,15,20,30,40,50,60,70,80,100' },
    'rooms-rates': { type: 'string', default: '0.25,0.5,0.75,1,1.25,1.5,1.75,2,2.5,3' },
    out: { type: 'string', default: new URL('../../results/', import.meta.url).pathname },
  },
});
const QUICK = values.quick === true;
const all: Record<string, Target> = {
  parley: parleyTarget({}, undefined, { storedMemberships: true }),
  // The opt-in write delay: each socket's frames held 10 ms and written together.
  'parley-delay10': { ...parleyTarget({ PARLEY_WRITE_DELAY_MS: '10' }), name: 'parley (writeDelayMs 10)' },
  ws: wsTarget,
  socketio: socketioTarget,
  go: goTarget,
};
// BENCH_PREV_CLI=<a checkout of an earlier commit>/packages/server/dist/src/cli.js: that build
// as one more target, for a change's before and after in one run.
const prevCli = process.env.BENCH_PREV_CLI;
if (prevCli !== undefined) all['parley-prev'] = { ...parleyTarget({}, prevCli), name: 'parley (previous commit)' };
const targets = (values.targets as string).split(',').map((n) => {
  const t = all[n];
  if (t === undefined) throw new Error(`unknown target ${n}; known: ${Object.keys(all).join(', ')}`);
  return t;
});
const workloads = new Set((values.workloads as string).split(','));

type Json = Record<string, unknown>;
const results: Record<string, Record<string, Json>> = {};
const record = (workload: string, target: string, r: Json) => {
  (results[workload] ??= {})[target] = r;
  console.error(`[${workload}] ${target}: ${JSON.stringify(r)}`);
};

/**
 * The members variants: the rooms connection i is in (Target.roomsOf), `perAccount` per account,
 * for a target with accounts; undefined for today's variants (one room per connection).
 */
function membersOf(t: Target, perAccount: number | undefined): ((i: number) => readonly string[]) | undefined {
  if (perAccount === undefined) return undefined;
  const roomsOf = t.roomsOf;
  if (roomsOf === undefined) throw new Error(`${t.name} has no accounts: no members variant`);
  return (i) => roomsOf(i, perAccount);
}

async function withServer<T>(t: Target, fn: (s: RunningServer) => Promise<T>, perAccount?: number): Promise<T | undefined> {
  let s: RunningServer;
  try {
    s = await t.start('0');
  } catch (err) {
    console.error(`[skip] ${t.name}: ${(err as Error).message}`);
    return undefined;
  }
  try {
    await t.prepare?.(s, 0);
    // Members variants: the stored memberships are made once here, before anything is measured.
    if (perAccount !== undefined) await t.prepareMemberships?.(s, perAccount);
    return await fn(s);
  } finally {
    await s.stop();
  }
}

/**
 * On a virtual machine the hypervisor may take a core away for a while (`steal`), and a step
 * measured then says more about the neighbours than about the server. Such a step (more than
 * STEAL_MAX of either core stolen) is measured again, at most STEAL_RETRIES times; the result
 * keeps its steal figures, so a table shows what a step went through.
 */
const STEAL_MAX = 0.15;
const STEAL_RETRIES = 2;
async function unstolen(step: () => Promise<RateResult>): Promise<RateResult> {
  let r = await step();
  for (let i = 0; i < STEAL_RETRIES && Math.max(...r.steal) > STEAL_MAX; i++) {
    console.error(`  (${stolen(r)} of the cores stolen: measuring the step again)`);
    await sleep(5_000);
    r = await step();
  }
  return r;
}

/** One console line per measured step. */
const logStep = (what: string, r: RateResult) =>
  console.error(
    `  ${what} → ${r.deliveriesPerSec}/s ratio ${r.deliveredRatio.toFixed(4)} p99 ${r.p99.toFixed(1)} ms cpu ${r.cpuUsPerDelivery.toFixed(2)} µs; ` +
      `server core ${pct(r.serverCpuShare)}, generator core ${pct(r.loaderCpuShare)}, stolen ${stolen(r)}`,
  );

/** Fan-out: N clients in one room, 10 senders. */
async function fanout(t: Target, ratePerSender: number[], seconds: number): Promise<RateResult[]> {
  const n = QUICK ? 300 : 1000;
  const out: RateResult[] = [];
  await withServer(t, async (s) => {
    const counter = newCounter();
    const { clients } = await openClients(t, s, n, () => 'fan', onStampFor(counter));
    const senders = Array.from({ length: 10 }, (_, k) => Math.floor((k * n) / 10));
    for (const rate of ratePerSender) {
      const r = await unstolen(() => runRate(s, clients, senders, () => n, counter, { ratePerSender: rate, seconds, warmup: 1, drain: 1.5 }));
      out.push(r);
      logStep(`${t.name} fan-out ${rate}/s × 10`, r);
      if (!passes(r)) break;
    }
    for (const c of clients) c.close();
  });
  return out;
}

/** Many small rooms: N clients in rooms of 10, every client sending. */
async function rooms(t: Target, rates: number[], seconds: number): Promise<RateResult[]> {
  const n = QUICK ? 2000 : 10_000;
  const out: RateResult[] = [];
  await withServer(t, async (s) => {
    const counter = newCounter();
    const { clients } = await openClients(t, s, n, (i) => `r${Math.floor(i / 10)}`, onStampFor(counter));
    const senders = Array.from({ length: n }, (_, i) => i);
    for (const rate of rates) {
      const r = await unstolen(() => runRate(s, clients, senders, () => 10, counter, { ratePerSender: rate, seconds, warmup: 1, drain: 1.5 }));
      out.push(r);
      logStep(`${t.name} rooms ${rate}/s each`, r);
      if (!passes(r)) break;
    }
    for (const c of clients) c.close();
  });
  return out;
}

/**
 * Idle capacity: RSS per connection with N idle connections (heartbeats on). `perAccount`: the
 * members variant, every connection in its account's `perAccount` rooms.
 */
async function idle(t: Target, n: number, holdSeconds: number, perAccount?: number): Promise<Json | undefined> {
  const roomsOf = membersOf(t, perAccount);
  return withServer(t, async (s) => {
    await sleep(500);
    const before = rssBytes(s.pid);
    // Half first, then the rest: the second half's growth is the marginal cost of a connection,
    // without the process's one-time growth (V8's young generation, compiled code) in it.
    const half = Math.floor(n / 2);
    const first = await openClients(t, s, half, (i) => `idle${Math.floor(i / 100)}`, () => undefined, 200, 0, roomsOf);
    await sleep(SETTLE_MS);
    const mid = rssBytes(s.pid);
    const second = await openClients(t, s, n - half, (i) => `idle${Math.floor((half + i) / 100)}`, () => undefined, 200, half, roomsOf);
    await sleep(holdSeconds * 1000);
    const after = rssBytes(s.pid);
    const alive = await probeAlive(t, s);
    for (const c of [...first.clients, ...second.clients]) c.close();
    return {
      connections: n,
      ...(perAccount === undefined ? {} : { roomsPerConnection: perAccount, entry: t.prepareMemberships === undefined ? 'join after connect' : 'stored, followed on connect' }),
      connectSeconds: first.seconds + second.seconds,
      rssBeforeMiB: before / 2 ** 20,
      rssAfterMiB: after / 2 ** 20,
      bytesPerConnection: Math.round((after - before) / n),
      marginalBytesPerConnection: Math.round((after - mid) / (n - half)),
      heldSeconds: holdSeconds,
      serverStillAnswers: alive,
    };
  }, perAccount);
}

/**
 * Connect storm: N connections, 200 at a time, each a ticket over HTTP and the upgrade that
 * redeems it (every server speaks the seed's handshake). Then N ticket requests alone, so the
 * table can split a connect into the ticket and the rest.
 */
async function connect(t: Target, n: number, perAccount?: number): Promise<Json | undefined> {
  const roomsOf = membersOf(t, perAccount);
  return withServer(t, async (s) => {
    const { clients, seconds, cpuUs } = await openClients(t, s, n, () => 'storm', () => undefined, 200, 0, roomsOf);
    for (const c of clients) c.close();
    let serverCpuUsPerTicket: number | undefined;
    const ticket = t.ticket;
    if (ticket !== undefined) {
      await sleep(1000);
      const cpu0 = cpuMicros(s.pid);
      await inPool(n, 200, (i) => ticket(s, i));
      serverCpuUsPerTicket = (cpuMicros(s.pid) - cpu0) / n;
    }
    const members = perAccount === undefined ? {} : { roomsPerConnection: perAccount, entry: t.prepareMemberships === undefined ? 'join after connect' : 'stored, followed on connect' };
    return { connections: n, ...members, seconds, connectsPerSec: Math.round(n / seconds), serverCpuUsPerConnect: cpuUs / n, serverCpuUsPerTicket };
  }, perAccount);
}

const secs = QUICK ? 4 : 8;
const rates = (option: 'rise-rates' | 'rooms-rates'): number[] => (values[option] as string).split(',').map(Number);
for (const t of targets) {
  if (workloads.has('fanout')) {
    const [r] = await fanout(t, [5], secs * 1.5);
    if (r !== undefined) record('fanout', t.name, { ...r });
  }
  if (workloads.has('rise')) {
    const steps = await fanout(t, QUICK ? [10, 40, 80] : rates('rise-rates'), secs);
    const best = steps.filter(passes).at(-1);
    if (steps.length > 0) record('rise', t.name, { best: best ?? null, steps });
  }
  if (workloads.has('rooms')) {
    const steps = await rooms(t, QUICK ? [1, 4] : rates('rooms-rates'), secs);
    const best = steps.filter(passes).at(-1);
    if (steps.length > 0) record('rooms', t.name, { best: best ?? null, steps });
  }
  const variant = t.name.includes('writeDelayMs'); // a config variant: traffic workloads only
  if (workloads.has('idle') && !variant) {
    const small = await idle(t, QUICK ? 2000 : 10_000, 10);
    if (small !== undefined) record('idle', t.name, small);
    const big = Number(values['idle-max']);
    if (!QUICK && big > 10_000) {
      const r = await idle(t, big, 35);
      if (r !== undefined) record('idle-max', t.name, r);
    }
    const many = Number(values['idle-cluster']);
    if (!QUICK && many > 0 && t.name === 'parley') record('idle-cluster', t.name, { ...(await idleCluster(many, Number(values['idle-cluster-nodes']), 60)) });
  }
  if (workloads.has('connect') && !variant) {
    const r = await connect(t, QUICK ? 2000 : 10_000);
    if (r !== undefined) record('connect', t.name, r);
  }
  // The members variants (issue 16): "connected and in --memberships rooms", from stored
  // memberships followed on connect, or (a build before them) joined after connect.
  const perAccount = Number(values.memberships);
  if (workloads.has('idle-members') && !variant && t.roomsOf !== undefined) {
    const r = await idle(t, QUICK ? 2000 : 10_000, 10, perAccount);
    if (r !== undefined) record('idle-members', t.name, r);
  }
  if (workloads.has('connect-members') && !variant && t.roomsOf !== undefined) {
    const r = await connect(t, QUICK ? 2000 : 10_000, perAccount);
    if (r !== undefined) record('connect-members', t.name, r);
  }
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; server on core 0, load generator on core 1`;
mkdirSync(values.out as string, { recursive: true });
const date = new Date().toISOString();
writeFileSync(join(values.out as string, 'results.json'), JSON.stringify({ date, machine, quick: QUICK, results }, null, 2) + '\n');
writeFileSync(join(values.out as string, 'results.md'), renderMarkdown(results, machine, date));
writeFileSync(join(values.out as string, 'chart.svg'), renderChart(results));
console.log(renderMarkdown(results, machine, date));
