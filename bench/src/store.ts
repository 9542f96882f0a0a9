/**
 * Store throughput: messages stored per second for each driver and each `durability` (`full`:
 * SQLite synchronous=FULL, Postgres synchronous_commit as the server sets it; `normal`: SQLite
 * synchronous=NORMAL, Postgres synchronous_commit=off), through the same batching MessageWriter
 * the server uses (one transaction per event-loop turn), and, for comparison, one transaction
 * per message; with the latency of each store call (one batch), p50 and p99.
 *
 *   npm run bench:store [-- --messages 50000 --senders 1000]
 *
 * Writes bench/results/store.json and bench/results/store.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PostgresStore, SqliteStore, type Store } from '@parley/server';
import { MessageWriter } from '@parley/server/writer';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '50000' },
    senders: { type: 'string', default: '1000' },
    'pg-url': { type: 'string', default: process.env.PARLEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    out: { type: 'string', default: new URL('../../results/', import.meta.url).pathname },
  },
});
const N = Number(values.messages);
const SENDERS = Number(values.senders);
const ROOMS = 100;

type Durability = 'full' | 'normal';

interface Row {
  driver: string;
  durability: Durability;
  mode: 'batched' | 'per-message';
  messages: number;
  seconds: number;
  perSecond: number;
  avgBatch: number;
  /** Latency of one store call (appendMessages: one batch, one transaction), ms. */
  p50Ms: number;
  p99Ms: number;
}

/** The durations of every appendMessages call on `store`, ms, from now on. */
function timed(store: Store): number[] {
  const times: number[] = [];
  const append = store.appendMessages.bind(store);
  store.appendMessages = async (batch) => {
    const t0 = performance.now();
    try {
      return await append(batch);
    } finally {
      times.push(performance.now() - t0);
    }
  };
  return times;
}

const percentile = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

const text = 'x'.repeat(120);

/** Batched: SENDERS concurrent senders each submitting through the writer, as the hub does. */
async function batched(driver: string, durability: Durability, store: Store): Promise<Row> {
  const times = timed(store);
  let batches = 0;
  const writer = new MessageWriter(store, () => {
    batches++;
  });
  const perSender = Math.ceil(N / SENDERS);
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: SENDERS }, async (_, s) => {
      for (let i = 0; i < perSender; i++) {
        await writer.submit({ room: `room-${s % ROOMS}`, from: `user${s}`, message: text, sent: new Date().toISOString(), ref: `${s}-${i}` });
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const messages = perSender * SENDERS;
  return { driver, durability, mode: 'batched', messages, seconds, perSecond: Math.round(messages / seconds), avgBatch: Math.round(messages / batches), p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

/** One transaction per message, one at a time: what an unbatched server would do. */
async function perMessage(driver: string, durability: Durability, store: Store, n: number): Promise<Row> {
  const times = timed(store);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await store.appendMessages([{ room: `room-${i % ROOMS}`, from: 'solo', message: text, sent: new Date().toISOString(), ref: `solo-${i}` }]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { driver, durability, mode: 'per-message', messages: n, seconds, perSecond: Math.round(n / seconds), avgBatch: 1, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

const rows: Row[] = [];

for (const durability of ['full', 'normal'] as const) {
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-'));
  const store = new SqliteStore(join(dir, 'parley.db'), { durability });
  await store.init();
  rows.push(await batched('sqlite', durability, store));
  rows.push(await perMessage('sqlite', durability, store, Math.min(N, 5000)));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
for (const durability of ['full', 'normal'] as const) {
  const schema = `parley_bench_${process.pid}_${durability}`;
  const store = new PostgresStore({ url: values['pg-url'], schema, durability });
  await store.init();
  rows.push(await batched('postgres', durability, store));
  rows.push(await perMessage('postgres', durability, store, Math.min(N, 2000)));
  await store.close();
  const c = new pg.Client({ connectionString: values['pg-url'] });
  await c.connect();
  await c.query(`DROP SCHEMA ${schema} CASCADE`);
  await c.end();
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
const md = [
  `Store throughput (${new Date().toISOString().slice(0, 10)}, ${machine}; ${SENDERS} concurrent senders, ${ROOMS} rooms, 120-byte messages, every message with a dedupe ref)`,
  '',
  '| driver | durability | mode | messages | seconds | stored/s | avg batch | batch p50 ms | batch p99 ms |',
  '|---|---|---|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.driver} | ${r.durability} | ${r.mode} | ${r.messages} | ${r.seconds.toFixed(2)} | ${r.perSecond.toLocaleString('en-US')} | ${r.avgBatch} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} |`,
  ),
  '',
].join('\n');
writeFileSync(join(values.out, 'store.json'), JSON.stringify({ date: new Date().toISOString(), machine, senders: SENDERS, rows }, null, 2) + '\n');
writeFileSync(join(values.out, 'store.md'), md);
console.log(md);
