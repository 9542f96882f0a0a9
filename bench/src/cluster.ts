/**
 * One node versus three nodes on the same work (deliveries/s, delivered ratio, p50/p99 latency,
 * server CPU per delivered message), all servers pinned to core 0, this load generator to core 1.
 *
 *   npm run bench:cluster
 *
 * Writes bench/results/cluster.json and bench/results/cluster.md.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PG_URL, REDIS_URL, startCluster, startParley, type BenchNode } from './nodes.js';
import { parleyTarget } from './parley-target.js';
import { newCounter, onStampFor, openClients, runRate, type RateResult } from './workload.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '600' },
    'room-size': { type: 'string', default: '30' },
    senders: { type: 'string', default: '40' },
    rate: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '10' },
    'pg-url': { type: 'string', default: PG_URL },
    'redis-url': { type: 'string', default: REDIS_URL },
    out: { type: 'string', default: new URL('../../results/', import.meta.url).pathname },
  },
});

interface Row extends RateResult {
  setup: string;
  nodes: number;
}

const work = {
  clients: Number(values.clients),
  roomSize: Number(values['room-size']),
  senders: Number(values.senders),
  ratePerSender: Number(values.rate),
  seconds: Number(values.seconds),
};

/** The suite's workload over several nodes: connection i on node i mod n, CPU summed over the nodes. */
async function measure(setup: string, nodes: BenchNode[]): Promise<Row> {
  const target = parleyTarget();
  await target.prepare(nodes[0] as BenchNode, work.clients);
  const rooms = Math.max(1, Math.floor(work.clients / work.roomSize));
  const roomOf = (i: number) => i % rooms;
  const members = new Array<number>(rooms).fill(0);
  for (let i = 0; i < work.clients; i++) (members[roomOf(i)] as number)++;
  const counter = newCounter();
  const { clients } = await openClients(target, nodes, work.clients, (i) => `room${roomOf(i)}`, onStampFor(counter));
  // Senders spread evenly over the rooms.
  const senders = Array.from({ length: work.senders }, (_, k) => Math.floor((k * work.clients) / work.senders));
  const r = await runRate(nodes, clients, senders, (i) => members[roomOf(i)] as number, counter, { ratePerSender: work.ratePerSender, seconds: work.seconds, warmup: 2, drain: 2 });
  for (const c of clients) c.close();
  console.error(`${setup}: ${r.deliveriesPerSec} deliveries/s, ratio ${r.deliveredRatio.toFixed(4)}, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms`);
  return { setup, nodes: nodes.length, ...r };
}

const rows: Row[] = [];
{
  const n = await startParley({});
  rows.push(await measure('1 node, SQLite + memory broker', [n]));
  await n.stop();
}
for (const count of [1, 3]) {
  const cluster = await startCluster(count, `n${count}`, {}, values['pg-url'], values['redis-url']);
  rows.push(await measure(`${count} node${count > 1 ? 's' : ''}, Postgres + Redis`, cluster.nodes));
  await cluster.stop();
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; servers on core 0, load generator on core 1`;
const md = [
  `One node versus three (${new Date().toISOString().slice(0, 10)}, ${machine}).`,
  `Work: ${work.clients} clients in rooms of ${work.roomSize}, ${work.senders} senders at ${work.ratePerSender} msg/s, ${work.seconds} s measured.`,
  '',
  '| setup | deliveries/s | delivered ratio | p50 ms | p99 ms | max ms | server CPU µs / delivery |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.setup} | ${r.deliveriesPerSec.toLocaleString('en-US')} | ${r.deliveredRatio.toFixed(4)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.max.toFixed(1)} | ${r.cpuUsPerDelivery.toFixed(1)} |`,
  ),
  '',
].join('\n');
writeFileSync(join(values.out, 'cluster.json'), JSON.stringify({ date: new Date().toISOString(), machine, work, rows }, null, 2) + '\n');
writeFileSync(join(values.out, 'cluster.md'), md);
console.log(md);
