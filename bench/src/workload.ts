/**
 * Workloads, the same for every target: open connections in rooms, send stamped messages at a
 * fixed offered rate, count deliveries and latencies, and read the server's CPU and RSS from
 * /proc. The load generator runs on core 1 (the caller is started with `taskset -c 1`), the
 * server on core 0.
 */
import { performance } from 'node:perf_hooks';
import { coreTicks, cpuMicros, rssBytes } from './load.js';
import type { BenchClient, RunningServer, Target } from './target.js';

/** Source addresses for many connections (each gives ~28k ephemeral ports). */
export const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.8'];

export interface Opened {
  clients: BenchClient[];
  seconds: number;
  /** Server CPU spent while connecting, µs. */
  cpuUs: number;
}

export interface Counter {
  /** Messages sent with stamps in [from, to) are counted. */
  from: number;
  to: number;
  delivered: number;
  latencies: number[];
}

export const newCounter = (): Counter => ({ from: Infinity, to: Infinity, delivered: 0, latencies: [] });

export function onStampFor(counter: Counter): (stamp: number) => void {
  return (stamp) => {
    if (stamp >= counter.from && stamp < counter.to) {
      counter.delivered++;
      counter.latencies.push(performance.now() - stamp);
    }
  };
}

/** Idle runs: pause between their two halves before the RSS is read (not counted as connect time). */
export const SETTLE_MS = 3000;

/** One server, or several nodes of one cluster (connection i goes to node i mod n; CPU and RSS are summed). */
export type Servers = RunningServer | readonly RunningServer[];
const list = (s: Servers): readonly RunningServer[] => (Array.isArray(s) ? s : [s as RunningServer]);
/** CPU µs used so far by the server (all its nodes). */
export const totalCpu = (s: Servers): number => list(s).reduce((sum, x) => sum + cpuMicros(x.pid), 0);
/** Resident bytes of the server (all its nodes). */
export const totalRss = (s: Servers): number => list(s).reduce((sum, x) => sum + rssBytes(x.pid), 0);

/** Runs fn(0) … fn(n - 1), at most `concurrency` at a time. */
export async function inPool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/** A fresh connection to `server` still gets its own message back (the server is alive). */
export async function probeAlive(t: Target, server: RunningServer): Promise<boolean> {
  let got = false;
  const a = await t.connect(server, 1, 'probe', () => (got = true));
  a.send(1);
  await sleep(500);
  a.close();
  return got;
}

/** Opens `n` connections, `concurrency` at a time, client i in room roomOf(i). */
export async function openClients(
  target: Target,
  server: Servers,
  n: number,
  roomOf: (i: number) => string,
  onStamp: (stamp: number) => void,
  concurrency = 100,
  /** Index of the first connection (accounts and source addresses follow the index). */
  from = 0,
  /** The members variants: the rooms connection i is in (ConnectOptions.rooms), instead of roomOf(i). */
  roomsOf?: (i: number) => readonly string[],
): Promise<Opened> {
  const clients: BenchClient[] = new Array(n);
  const nodes = list(server);
  const cpu0 = totalCpu(server);
  const t0 = performance.now();
  await inPool(n, concurrency, async (i) => {
    // Round-robin over source addresses: ports left in TIME_WAIT by earlier runs do not run out.
    const source = SOURCES[(from + i) % SOURCES.length] as string;
    const rooms = roomsOf?.(from + i);
    clients[i] = await target.connect(nodes[(from + i) % nodes.length] as RunningServer, from + i, roomOf(i), onStamp, rooms === undefined ? { localAddress: source } : { localAddress: source, rooms });
  });
  return { clients, seconds: (performance.now() - t0) / 1000, cpuUs: totalCpu(server) - cpu0 };
}

export interface RateResult {
  ratePerSender: number;
  offeredPerSec: number;
  sent: number;
  expected: number;
  delivered: number;
  deliveredRatio: number;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  max: number;
  cpuUsPerDelivery: number;
  /** Share of one core the server (all its nodes) used in the window: 1 is a saturated core. */
  serverCpuShare: number;
  /** Share of one core this load generator used in the window: near 1, the generator bounds the run. */
  loaderCpuShare: number;
  /** Share of the window the hypervisor took from the server's core (0) and the generator's (1). */
  steal: [number, number];
  rssBytes: number;
}

/** A step passes when every message reached every member and the p99 latency stayed within 250 ms. */
export const passes = (r: Pick<RateResult, 'deliveredRatio' | 'p99'>): boolean => r.deliveredRatio >= 1 && r.p99 <= 250;

const q = (sorted: Float64Array, p: number) => (sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number));

/**
 * Has `senders` send `ratePerSender` msg/s each for warmup + seconds; counts deliveries of the
 * messages sent in the measured window (waiting `drain` s for late ones).
 */
export async function runRate(
  server: Servers,
  clients: BenchClient[],
  senders: number[],
  membersPerRoomOf: (i: number) => number,
  counter: Counter,
  o: { ratePerSender: number; seconds: number; warmup?: number; drain?: number },
): Promise<RateResult> {
  counter.delivered = 0;
  counter.latencies = [];
  counter.from = Infinity;
  counter.to = Infinity;
  const intervalMs = 1000 / o.ratePerSender;
  let sent = 0;
  let expected = 0;
  let measuring = false;
  let next = performance.now();
  // Spread the senders over the interval so the load is smooth, not a burst per tick.
  const slots = Math.max(1, Math.min(senders.length, Math.ceil(intervalMs)));
  let timer: NodeJS.Timeout | undefined;
  let slot = 0;
  const tick = () => {
    const now = performance.now();
    while (next <= now) {
      for (let k = slot; k < senders.length; k += slots) {
        const i = senders[k] as number;
        const stamp = performance.now();
        (clients[i] as BenchClient).send(stamp);
        if (measuring) {
          sent++;
          expected += membersPerRoomOf(i);
        }
      }
      slot = (slot + 1) % slots;
      next += intervalMs / slots;
    }
    timer = setTimeout(tick, Math.max(0, next - performance.now()));
  };
  tick();
  await sleep((o.warmup ?? 2) * 1000);
  const cpu0 = totalCpu(server);
  const own0 = process.cpuUsage();
  const ticks0 = coreTicks();
  counter.from = performance.now();
  measuring = true;
  await sleep(o.seconds * 1000);
  measuring = false;
  counter.to = performance.now();
  const cpu1 = totalCpu(server);
  const own = process.cpuUsage(own0);
  const ticks1 = coreTicks();
  const stolen = [0, 1].map((c) => {
    const [t0, t1] = [ticks0[c], ticks1[c]];
    return t0 !== undefined && t1 !== undefined && t1.total > t0.total ? (t1.steal - t0.steal) / (t1.total - t0.total) : 0;
  }) as [number, number];
  clearTimeout(timer);
  const windowSec = (counter.to - counter.from) / 1000;
  await sleep((o.drain ?? 2) * 1000);
  const sorted = Float64Array.from(counter.latencies).sort();
  return {
    ratePerSender: o.ratePerSender,
    offeredPerSec: Math.round(expected / windowSec),
    sent,
    expected,
    delivered: counter.delivered,
    deliveredRatio: expected === 0 ? 0 : counter.delivered / expected,
    deliveriesPerSec: Math.round(counter.delivered / windowSec),
    p50: q(sorted, 0.5),
    p99: q(sorted, 0.99),
    max: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : NaN,
    cpuUsPerDelivery: counter.delivered > 0 ? (cpu1 - cpu0) / counter.delivered : NaN,
    serverCpuShare: (cpu1 - cpu0) / (windowSec * 1e6),
    loaderCpuShare: (own.user + own.system) / (windowSec * 1e6),
    steal: stolen,
    rssBytes: totalRss(server),
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
