/**
 * Fan-out on one node: N clients in one room, S senders at a fixed rate each; Parley's server
 * pinned to core 0, this load generator to core 1 (run it with `taskset -c 1`).
 *
 *   node bench/dist/src/fanout.js --clients 1000 --senders 10 --rate 5
 */
import { parseArgs } from 'node:util';
import { cpuMicros, rssBytes, runParleyLoad } from './load.js';
import { startParley } from './nodes.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    senders: { type: 'string', default: '10' },
    rate: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '10' },
    'write-delay-ms': { type: 'string', default: '0' },
  },
});

const node = await startParley({ PARLEY_WRITE_DELAY_MS: values['write-delay-ms'] as string });
let c0 = 0;
let c1 = 0;
const r = await runParleyLoad({
  urls: [node.url],
  clients: Number(values.clients),
  roomSize: Number(values.clients),
  senders: Number(values.senders),
  ratePerSender: Number(values.rate),
  seconds: Number(values.seconds),
  onWindow: (p) => (p === 'start' ? (c0 = cpuMicros(node.pid)) : (c1 = cpuMicros(node.pid))),
});
const rss = rssBytes(node.pid);
await node.stop();
console.log(
  JSON.stringify({
    ...r,
    cpuUsPerDelivery: (c1 - c0) / r.delivered,
    rssMiB: rss / 2 ** 20,
  }),
);
