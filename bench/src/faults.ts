/**
 * The fault measurements of issue 15, each scenario a function, with SDK clients (and raw ones
 * where the SDK would hide what the server did): what was sent and acked, how many messages
 * receivers miss at the end (without reloading history after a `gap`, as the SDK leaves it to
 * the app), how many streams (member × room) were resumed `recovered: false`, and the longest
 * delay from a message's ack to its arrival at a receiver. Nodes on core 0, this process on
 * core 1 (the npm script).
 *
 *   npm run bench:faults [-- --messages 10000 --senders 24 --receivers 30 --only sigterm]
 *
 * Prints a markdown table and writes bench/results/faults.md.
 */
import { isRoomEvent } from '@parley/protocol';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import pg from 'pg';
import { ParleyClient } from '@parley/client';
import { OwnRedis } from '@parley/testing/cluster';
import { account, Member, PASSWORD, Sends, sleep, type Account } from '@parley/testing/members';
import { PG_URL, startParley, type BenchNode } from './nodes.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '10000' },
    senders: { type: 'string', default: '24' },
    receivers: { type: 'string', default: '30' },
    rate: { type: 'string', default: '20' },
    only: { type: 'string' },
    out: { type: 'string', default: new URL('../../results/', import.meta.url).pathname },
  },
});

const MESSAGES = Number(values.messages);
const SENDERS = Number(values.senders);
const RECEIVERS = Number(values.receivers);
/** Messages per second per sender. */
const RATE = Number(values.rate);
const ROOM = 'bench';

interface Row {
  fault: string;
  sent: number;
  acked: number;
  missing: number;
  unrecovered: string;
  /** undefined: no ack times (raw senders). */
  maxDelayMs: number | undefined;
  notes: string;
}

const log = (line: string): void => console.error(`[faults] ${line}`);

// ---------------------------------------------------------------------------------------------
// The pieces

/** A Postgres schema of its own per scenario. */
const schemaName = (tag: string): string => `parley_bench_faults_${tag}_${process.pid}`;

async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await c.end();
}

async function storedTexts(schema: string): Promise<Map<string, number>> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const { rows } = await c.query<{ body: string; seq: string }>(`SELECT body, seq FROM ${schema}.messages WHERE room = $1`, [ROOM]);
    return new Map(rows.map((r) => [r.body, Number(r.seq)]));
  } finally {
    await c.end();
  }
}

/** The SDK as a user would configure it: default backoff (500 ms doubling to 30 s). */
function sdkMember(name: string, urls: string[], acct: Account): Member {
  return new Member({
    name,
    fillGaps: false,
    client: (wire) => new ParleyClient({ url: urls, token: acct.token, username: acct.name, password: PASSWORD, rooms: [], WebSocket: wire.WebSocket }),
  });
}

async function members(nodes: BenchNode[], count: number, prefix: string): Promise<{ m: Member; user: string }[]> {
  const out: { m: Member; user: string }[] = [];
  const urls = nodes.map((n) => n.url);
  for (let i = 0; i < count; i++) {
    const home = i % urls.length;
    const name = `${prefix}${i}`;
    const acct = await account(urls[home] ?? '', name);
    const m = sdkMember(name, [...urls.slice(home), ...urls.slice(0, home)], acct);
    await m.sdk.connect();
    await m.join(ROOM);
    out.push({ m, user: acct.name });
  }
  return out;
}

/** Each sender sends at RATE until `total` messages were sent in all; `at(sent)` runs the fault at its moment. */
async function drive(sends: Sends, senders: { m: Member; user: string }[], total: number, at: (sent: number) => void): Promise<void> {
  const interval = 1000 / RATE;
  let sent = 0;
  await Promise.all(
    senders.map(async (s, k) => {
      await sleep((k * interval) / senders.length);
      while (sent < total) {
        sent++;
        sends.send(s.m, s.user, ROOM);
        at(sent);
        await sleep(interval);
      }
    }),
  );
}

/** Waits (up to `ms`) until every receiver holds the room's latest stored seq or stopped moving. */
async function settle(receivers: Member[], top: () => number, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = -1;
  let still = 0;
  while (Date.now() < deadline) {
    const t = top();
    const sum = receivers.reduce((n, m) => n + m.last(ROOM), 0);
    if (receivers.every((m) => m.last(ROOM) >= t)) return;
    still = sum === last ? still + 1 : 0;
    last = sum;
    if (still >= 20) return; // 10 s without progress: what is missing stays missing
    await sleep(500);
  }
}

/** The row's figures from what the members got against the store. */
function measure(fault: string, sends: Sends, receivers: Member[], stored: Map<string, number>, notes: string[], delayOf: (m: Member) => boolean = () => true): Row {
  const storedSeqs = [...stored.values()];
  const ackAt = new Map<string, number>();
  for (const s of sends.all) if (s.state === 'acked' && s.settledAt !== undefined) ackAt.set(s.text, s.settledAt);
  let missing = 0;
  let unrecovered = 0;
  let maxDelay: number | undefined;
  for (const m of receivers) {
    const log = m.rooms.get(ROOM);
    if (log === undefined) continue;
    const got = new Set(log.direct.map((r) => r.seq));
    for (const seq of storedSeqs) if (seq > log.from && !got.has(seq)) missing++;
    if (log.gaps > 0) unrecovered++;
    if (!delayOf(m)) continue;
    for (const r of log.direct) {
      const a = ackAt.get(r.text);
      if (a !== undefined) maxDelay = Math.max(maxDelay ?? 0, r.at - a);
    }
  }
  const refused = sends.all.filter((s) => s.state === 'refused').length;
  const pending = sends.pending;
  if (refused > 0) notes.unshift(`${refused} refused`);
  if (pending > 0) notes.unshift(`${pending} never settled`);
  return { fault, sent: sends.all.length, acked: sends.acked().length, missing, unrecovered: `${unrecovered} of ${receivers.length}`, maxDelayMs: maxDelay, notes: notes.join('; ') };
}

const BENCH_ENV = {
  // Quiet logs; the load generator is one address with many accounts.
  PARLEY_LOG_LEVEL: 'warn',
};

const pgEnv = (schema: string): Record<string, string> => ({ PARLEY_STORE: 'postgres', PARLEY_POSTGRES_URL: PG_URL, PARLEY_POSTGRES_SCHEMA: schema });

// ---------------------------------------------------------------------------------------------
// The scenarios

/** kill -9 of the one node mid-traffic, started again at once on the same port and data. */
async function killOneNode(store: 'sqlite' | 'postgres'): Promise<Row> {
  const tag = `kill${store}`;
  const schema = schemaName(tag);
  const env = { ...BENCH_ENV, ...(store === 'postgres' ? pgEnv(schema) : {}) };
  let node = await startParley(env);
  const all = await members([node], RECEIVERS, `${tag}_`);
  const sends = new Sends();
  let restarted: Promise<void> | undefined;
  await drive(sends, all.slice(0, SENDERS), MESSAGES, (sent) => {
    if (sent !== Math.floor(MESSAGES / 3) || restarted !== undefined) return;
    restarted = (async () => {
      const place = { port: node.port, dataDir: node.dataDir };
      await node.kill('SIGKILL');
      log(`${tag}: node killed at message ${sent}`);
      node = await startParley(env, '0', undefined, { place, waitMs: 90_000 });
      log(`${tag}: node started again`);
    })();
  });
  await restarted;
  await sends.settle(60_000);
  const receivers = all.map((a) => a.m);
  const stored = store === 'postgres' ? await storedTexts(schema) : await sqliteTexts(node);
  await settle(receivers, () => Math.max(0, ...stored.values()));
  const row = measure(`kill -9, one node on ${store === 'sqlite' ? 'SQLite' : 'Postgres'}, restart`, sends, receivers, stored, []);
  for (const m of receivers) m.close();
  await node.stop();
  if (store === 'postgres') await dropSchema(schema);
  return row;
}

/** The texts the room holds, read through the node (history pages), for a SQLite node. */
async function sqliteTexts(node: BenchNode): Promise<Map<string, number>> {
  const acct = await account(node.url, `reader${Date.now()}`);
  const reader = sdkMember('reader', [node.url], acct);
  await reader.sdk.connect();
  await reader.join(ROOM);
  const out = new Map<string, number>();
  let before: number | undefined;
  for (;;) {
    const page = await reader.sdk.history(ROOM, before === undefined ? { limit: 100 } : { before, limit: 100 });
    if (page.length === 0) break;
    for (const m of page) if (!isRoomEvent(m)) out.set(m.message, m.seq); // room events (the joins) carry no text
    before = Math.min(...page.map((m) => m.seq));
    if (before <= 1) break;
  }
  reader.close();
  return out;
}

/** Redis killed for 10 s under traffic on three nodes (Postgres, a Redis of their own). */
async function redisOutage(): Promise<Row> {
  const schema = schemaName('redis');
  const redis = await OwnRedis.start();
  const env = { ...BENCH_ENV, ...pgEnv(schema), PARLEY_BROKER: 'redis', PARLEY_PRESENCE: 'redis', PARLEY_REDIS_URL: redis.url, PARLEY_REDIS_PREFIX: `parley-bench-faults:${process.pid}:` };
  const nodes: BenchNode[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await startParley(env));
  const all = await members(nodes, RECEIVERS, 'redis_');
  const sends = new Sends();
  let outage: Promise<void> | undefined;
  await drive(sends, all.slice(0, SENDERS), MESSAGES, (sent) => {
    if (sent !== Math.floor(MESSAGES / 4) || outage !== undefined) return;
    outage = (async () => {
      await redis.kill();
      log('Redis killed');
      await sleep(10_000);
      await redis.start();
      log('Redis started');
    })();
  });
  await outage;
  await sends.settle(60_000);
  const stored = await storedTexts(schema);
  const receivers = all.map((a) => a.m);
  await settle(receivers, () => Math.max(0, ...stored.values()));
  const early = receivers.reduce((n, m) => n + m.wire.ackOrderViolations().length, 0);
  const row = measure('Redis killed 10 s on 3 nodes', sends, receivers, stored, [`${early} acks before their own new_message`]);
  for (const m of receivers) m.close();
  for (const n of nodes) await n.stop();
  await redis.stop();
  await dropSchema(schema);
  return row;
}

/** A raw client: sends frames with refs and records what came back (nothing retried, nothing hidden). */
class RawSender {
  readonly answered = new Map<string, 'ack' | string>();
  readonly sent: { ref: string; text: string; at: number }[] = [];
  closed = false;
  private n = 0;
  private constructor(
    readonly name: string,
    private readonly ws: WebSocket,
  ) {
    ws.on('message', (data) => {
      const f: unknown = JSON.parse(data.toString());
      if (typeof f !== 'object' || f === null || !('type' in f) || !('payload' in f)) return;
      const p = f.payload;
      if (typeof p !== 'object' || p === null || !('ref' in p)) return;
      if (f.type === 'ack') this.answered.set(String(p.ref), 'ack');
      else if (f.type === 'error' && 'code' in p) this.answered.set(String(p.ref), String(p.code));
    });
    ws.on('close', () => (this.closed = true));
    ws.on('error', () => undefined);
  }

  static async open(url: string, acct: Account): Promise<RawSender> {
    const res = await fetch(`${url}/ticket`, { method: 'POST', headers: { authorization: `Bearer ${acct.token}`, 'content-type': 'application/json' }, body: '{}' });
    const body: unknown = await res.json();
    if (typeof body !== 'object' || body === null || !('otp' in body) || typeof body.otp !== 'string') throw new Error(`ticket: ${res.status}`);
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?otp=${encodeURIComponent(body.otp)}`);
    const s = new RawSender(acct.name, ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', (data) => {
        if (data.toString().includes('"joined"') && data.toString().includes(`"${ROOM}"`)) resolve();
      });
      ws.once('open', () => ws.send(JSON.stringify({ type: 'join', payload: { room: ROOM } })));
    });
    return s;
  }

  send(): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    const ref = `${this.name}-${++this.n}`;
    const text = `raw:${ref}`;
    this.sent.push({ ref, text, at: Date.now() });
    this.ws.send(JSON.stringify({ type: 'send_message', payload: { message: text, room: ROOM }, ref }));
  }

  close(): void {
    this.ws.close();
  }
}

/** SIGTERM of the one node (Postgres) while raw senders keep sending; SDK receivers resume once it is back. */
async function sigtermUnderLoad(): Promise<Row> {
  const schema = schemaName('term');
  const env = { ...BENCH_ENV, ...pgEnv(schema) };
  let node = await startParley(env);
  const receivers = await members([node], Math.max(1, RECEIVERS - SENDERS), 'termr_');
  const raws: RawSender[] = [];
  for (let i = 0; i < SENDERS; i++) raws.push(await RawSender.open(node.url, await account(node.url, `terms_${i}`)));
  const interval = 1000 / RATE;
  let signalAt = 0;
  let exit: number | null = null;
  const place = { port: node.port, dataDir: node.dataDir };
  const stopping = (async () => {
    await sleep(3000);
    signalAt = Date.now();
    exit = await node.kill('SIGTERM');
    log(`SIGTERM: node exited ${exit}`);
  })();
  await Promise.all(
    raws.map(async (s, k) => {
      await sleep((k * interval) / raws.length);
      while (!s.closed && (signalAt === 0 || Date.now() - signalAt < 5000)) {
        s.send();
        await sleep(interval);
      }
    }),
  );
  await stopping;
  node = await startParley(env, '0', undefined, { place, waitMs: 90_000 });
  const stored = await storedTexts(schema);
  const rm = receivers.map((r) => r.m);
  await settle(rm, () => Math.max(0, ...stored.values()));
  const all = raws.flatMap((s) => s.sent.map((x) => ({ ...x, answer: s.answered.get(x.ref) })));
  const afterSignal = all.filter((x) => x.at >= signalAt);
  const unanswered = all.filter((x) => x.answer === undefined);
  const storedUnanswered = unanswered.filter((x) => stored.has(x.text)).length;
  const codes = new Map<string, number>();
  for (const x of all) if (x.answer !== undefined && x.answer !== 'ack') codes.set(x.answer, (codes.get(x.answer) ?? 0) + 1);
  const sent = all.length;
  const acked = all.filter((x) => x.answer === 'ack').length;
  const sends = new Sends();
  const row = measure('SIGTERM under load (raw senders)', sends, rm, stored, [
    `exit ${exit}`,
    `${afterSignal.length} sent after the signal (${afterSignal.filter((x) => x.answer === 'ack').length} of them acked)`,
    `refused ${JSON.stringify(Object.fromEntries(codes))}`,
    `${unanswered.length} never acked nor refused: ${storedUnanswered} of them stored, ${unanswered.length - storedUnanswered} not stored`,
  ]);
  row.sent = sent;
  row.acked = acked;
  for (const m of rm) m.close();
  for (const s of raws) s.close();
  await node.stop();
  await dropSchema(schema);
  return row;
}

/** Some receivers stop reading for 20 s while the senders go on (one node, Postgres). */
async function stalledReaders(): Promise<Row> {
  const schema = schemaName('stall');
  const env = { ...BENCH_ENV, ...pgEnv(schema) };
  const node = await startParley(env);
  const all = await members([node], RECEIVERS, 'stall_');
  const senders = all.slice(0, SENDERS);
  const readers = all.slice(SENDERS);
  const paused = readers.slice(0, Math.max(1, Math.floor(readers.length / 2)));
  const sends = new Sends();
  let pausing: Promise<void> | undefined;
  await drive(sends, senders, MESSAGES, (sent) => {
    if (sent !== Math.floor(MESSAGES / 5) || pausing !== undefined) return;
    pausing = (async () => {
      for (const p of paused) p.m.wire.pause();
      log(`${paused.length} receivers stop reading`);
      await sleep(20_000);
      for (const p of paused) p.m.wire.resume();
      log('they read again');
    })();
  });
  await pausing;
  await sends.settle(60_000);
  const stored = await storedTexts(schema);
  const receivers = all.map((a) => a.m);
  await settle(receivers, () => Math.max(0, ...stored.values()));
  const closes = paused.flatMap((p) => p.m.wire.closes);
  const pausedSet = new Set(paused.map((p) => p.m));
  const row = measure(`receiver stops reading (${paused.length} of ${receivers.length}, 20 s)`, sends, receivers, stored, [`close codes seen by the stalled readers: ${JSON.stringify(closes)}`, 'max delay over the others'], (m) => !pausedSet.has(m));
  for (const m of receivers) m.close();
  await node.stop();
  await dropSchema(schema);
  return row;
}

const scenarios: Record<string, () => Promise<Row>> = {
  'kill-sqlite': () => killOneNode('sqlite'),
  'kill-postgres': () => killOneNode('postgres'),
  redis: redisOutage,
  sigterm: sigtermUnderLoad,
  stall: stalledReaders,
};

const rows: Row[] = [];
for (const [name, run] of Object.entries(scenarios)) {
  if (values.only !== undefined && !values.only.split(',').includes(name)) continue;
  log(`${name}…`);
  const row = await run();
  log(JSON.stringify(row));
  rows.push(row);
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; nodes on core 0, clients on core 1`;
const md = [
  `Faults (${new Date().toISOString().slice(0, 10)}, ${machine}). ${SENDERS} senders at ${RATE} msg/s, ${RECEIVERS} members in one room, ${MESSAGES} messages per run; SDK clients with its default backoff, raw clients for SIGTERM.`,
  '',
  '| fault | messages sent | acked | receivers missing | `recovered:false` streams | max delay ack→receive | notes |',
  '|---|---:|---:|---:|---:|---:|---|',
  ...rows.map((r) => `| ${r.fault} | ${r.sent} | ${r.acked} | ${r.missing} | ${r.unrecovered} | ${r.maxDelayMs === undefined ? '–' : `${(r.maxDelayMs / 1000).toFixed(1)} s`} | ${r.notes} |`),
  '',
].join('\n');
console.log(md);
writeFileSync(join(values.out, 'faults.md'), md);
process.exit(0);
