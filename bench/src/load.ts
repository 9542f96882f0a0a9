/**
 * The load generator for Parley's protocol: logs in once per account, fetches a ticket per
 * connection, spreads connections over the given node URLs and rooms, has some of them send at
 * a fixed rate with a send time stamped into the message, and counts every delivery.
 *
 * Latency is measured from the stamp (performance.now() of this process) to the arrival of the
 * `new_message` at each receiver, so it includes the server's store and fan-out.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

export interface LoadOptions {
  /** Base URLs of the nodes; connection i goes to urls[i % urls.length]. */
  urls: string[];
  clients: number;
  /** Members per room; rooms = clients / roomSize. */
  roomSize: number;
  /** How many clients send (spread evenly over the rooms). */
  senders: number;
  /** Messages per second per sender. */
  ratePerSender: number;
  /** Measured seconds (after warm-up). */
  seconds: number;
  warmupSeconds?: number;
  /** Accounts to log in (connections share them). */
  accounts?: number;
  /** Extra idle seconds after the last send to collect late deliveries. */
  drainSeconds?: number;
  /** Called when the measured window starts and ends (e.g. to read the server's CPU). */
  onWindow?: (phase: 'start' | 'end') => void;
}

export interface LoadResult {
  sent: number;
  expected: number;
  delivered: number;
  deliveredRatio: number;
  deliveriesPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
  connectMs: number;
}

export const post = async (url: string, path: string, body: unknown, token?: string): Promise<Record<string, string>> => {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url + path, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as Record<string, string>;
  if (!res.ok && !(path === '/register' && res.status === 409)) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
};

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

export async function runParleyLoad(o: LoadOptions): Promise<LoadResult> {
  const accounts = Math.min(o.accounts ?? 50, o.clients);
  const rooms = Math.max(1, Math.floor(o.clients / o.roomSize));
  const password = 'bench-password';
  const tokens: string[] = [];
  const url0 = o.urls[0] as string;
  for (let i = 0; i < accounts; i++) {
    const username = `bench${i}`;
    await post(url0, '/register', { username, password });
    tokens.push((await post(url0, '/login', { username, password })).token as string);
  }

  // Connect everything (ticket per connection), join the rooms.
  const sockets: WebSocket[] = [];
  const roomOf: string[] = [];
  let measuring = false;
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let delivered = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  const BATCH = 200;
  for (let start = 0; start < o.clients; start += BATCH) {
    await Promise.all(
      Array.from({ length: Math.min(BATCH, o.clients - start) }, async (_, k) => {
        const i = start + k;
        const url = o.urls[i % o.urls.length] as string;
        const { otp } = await post(url, '/ticket', undefined, tokens[i % accounts]);
        const room = `room${i % rooms}`;
        const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?otp=${otp}&resume=1`, { perMessageDeflate: false });
        await new Promise<void>((resolve, reject) => {
          ws.once('error', reject);
          ws.on('message', (data: Buffer) => {
            // Fast path: only new_message frames matter; find the stamp without a full parse.
            const s = data.toString();
            if (s.startsWith('{"type":"joined"')) return resolve();
            if (!s.startsWith('{"type":"new_message"')) return;
            const at = s.indexOf('"message":"@');
            if (at < 0) return;
            const stamp = Number(s.slice(at + 12, s.indexOf('"', at + 12)));
            // Count a delivery when its message was sent inside the measured window.
            if (!(stamp >= windowStart && stamp < windowEnd)) return;
            delivered++;
            latencies.push(performance.now() - stamp);
          });
          ws.once('open', () => ws.send(JSON.stringify({ type: 'join', payload: { room } })));
        });
        sockets[i] = ws;
        roomOf[i] = room;
      }),
    );
  }
  const connectMs = performance.now() - t0;

  // Senders: evenly spread over rooms.
  const senderIdx = Array.from({ length: o.senders }, (_, k) => Math.floor((k * o.clients) / o.senders));
  const membersOf = new Map<string, number>();
  for (const r of roomOf) membersOf.set(r, (membersOf.get(r) ?? 0) + 1);
  let sent = 0;
  let expected = 0;
  const send = () => {
    for (const i of senderIdx) {
      const ws = sockets[i] as WebSocket;
      if (ws.readyState !== WebSocket.OPEN) continue;
      ws.send(`{"type":"send_message","payload":{"room":"${roomOf[i]}","message":"@${performance.now()}"}}`);
      if (measuring) {
        sent++;
        expected += membersOf.get(roomOf[i] as string) ?? 0;
      }
    }
  };
  const intervalMs = 1000 / o.ratePerSender;
  let timer: NodeJS.Timeout | undefined;
  let next = performance.now();
  const tick = () => {
    // Catch up on missed ticks so the offered rate stays fixed even if the loop stalls.
    const now = performance.now();
    while (next <= now) {
      send();
      next += intervalMs;
    }
    timer = setTimeout(tick, Math.max(0, next - performance.now()));
  };
  tick();
  await new Promise((r) => setTimeout(r, (o.warmupSeconds ?? 2) * 1000));
  o.onWindow?.('start');
  windowStart = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  measuring = false;
  windowEnd = performance.now();
  clearTimeout(timer);
  const windowSec = (windowEnd - windowStart) / 1000;
  o.onWindow?.('end');
  await new Promise((r) => setTimeout(r, (o.drainSeconds ?? 2) * 1000));
  for (const ws of sockets) ws.terminate();

  const sorted = Float64Array.from(latencies).sort();
  return {
    sent,
    expected,
    delivered,
    deliveredRatio: expected === 0 ? 0 : delivered / expected,
    deliveriesPerSec: Math.round(delivered / windowSec),
    latencyMs: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : NaN },
    connectMs,
  };
}

/** CPU time (user + system) of a process, in microseconds, from /proc. */
export function cpuMicros(pid: number): number {
  // /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks; the name may contain spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLK_TCK;
}

/** Resident set size of a process, in bytes, from /proc. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) * 1024;
}

/** Linux's USER_HZ, fixed at 100 on every architecture Node runs on. */
const CLK_TCK = 100;
