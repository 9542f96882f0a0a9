/**
 * Store throughput: messages stored per second for each driver, through the same batching
 * MessageWriter the server uses (one transaction per event-loop turn), and, for comparison,
 * one transaction per message.
 *
 *   npm run bench:store [-- --messages 50000 --senders 1000]
 *
 * Writes bench/results/store.json and bench/results/store.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
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

interface Row {
  driver: string;
  mode: 'batched' | 'per-message';
  messages: number;
  seconds: number;
  perSecond: number;
  avgBatch: number;
}

const text = 'x'.repeat(120);

/** Batched: SENDERS concurrent senders each submitting through the writer, as the hub does. */
async function batched(driver: string, store: Store): Promise<Row> {
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
  return { driver, mode: 'batched', messages, seconds, perSecond: Math.round(messages / seconds), avgBatch: Math.round(messages / batches) };
}

/** One transaction per message, one at a time: what an unbatched server would do. */
async function perMessage(driver: string, store: Store, n: number): Promise<Row> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await store.appendMessages([{ room: `room-${i % ROOMS}`, from: 'solo', message: text, sent: new Date().toISOString(), ref: `solo-${i}` }]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { driver, mode: 'per-message', messages: n, seconds, perSecond: Math.round(n / seconds), avgBatch: 1 };
}

const rows: Row[] = [];

{
  const dir = mkdtempSync(join(tmpdir(), 'parley-bench-'));
  const store = new SqliteStore(join(dir, 'parley.db'));
  await store.init();
  rows.push(await batched('sqlite', store));
  rows.push(await perMessage('sqlite', store, Math.min(N, 5000)));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
{
  const schema = `parley_bench_${process.pid}`;
  const store = new PostgresStore({ url: values['pg-url'], schema });
  await store.init();
  rows.push(await batched('postgres', store));
  rows.push(await perMessage('postgres', store, Math.min(N, 2000)));
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
  '| driver | mode | messages | seconds | stored/s | avg batch |',
  '|---|---|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.driver} | ${r.mode} | ${r.messages} | ${r.seconds.toFixed(2)} | ${r.perSecond.toLocaleString('en-US')} | ${r.avgBatch} |`),
  '',
].join('\n');
writeFileSync(join(values.out, 'store.json'), JSON.stringify({ date: new Date().toISOString(), machine, senders: SENDERS, rows }, null, 2) + '\n');
writeFileSync(join(values.out, 'store.md'), md);
console.log(md);
