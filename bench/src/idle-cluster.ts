/**
 * The large idle run: 100,000 authenticated connections held with heartbeats on.
 *
 * This machine lets one process open at most 20,000 files (hard RLIMIT_NOFILE, not raisable
 * here), so one Node process can hold about 19,000 sockets. The run therefore holds them the way
 * Parley scales out: several nodes on one Postgres and one Redis, all pinned to core 0, each
 * fed by its own load-generator process on core 1 connecting from its own 127.0.x.y addresses.
 * It reports the nodes' summed RSS growth per connection (and, as the idle run does, the growth
 * of the second half alone: the marginal cost of a connection, without each process's one-time
 * growth such as V8's young generation), their CPU while idle (heartbeats),
 * how many connections stayed open, the pings the clients answered, and whether a fresh client
 * still gets a message through at the end.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LoaderJob, LoaderReport } from './idle-loader.js';
import { startCluster } from './nodes.js';
import { parleyTarget } from './parley-target.js';
import { probeAlive, SETTLE_MS, sleep, totalCpu, totalRss } from './workload.js';

const LOADER = fileURLToPath(new URL('./idle-loader.js', import.meta.url));

export interface IdleClusterResult {
  connections: number;
  nodes: number;
  connectSeconds: number;
  /** Connection attempts the load generators had to repeat. */
  connectRetries: number;
  heldSeconds: number;
  stillOpen: number;
  closedDuringHold: number;
  pingsAnswered: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  bytesPerConnection: number;
  /** RSS growth per connection over the second half of the connections alone. */
  marginalBytesPerConnection: number;
  /** Server CPU while idle, per connection per second (heartbeats, presence refresh). */
  idleCpuUsPerConnectionSecond: number;
  serverStillAnswers: boolean;
}

function nextReport(child: ChildProcess, kind: LoaderReport['kind']): Promise<LoaderReport> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: LoaderReport) => {
      if (m.kind === kind) {
        child.off('message', onMessage);
        resolve(m);
      } else if (m.kind === 'failed') reject(new Error(`load generator: ${m.error}`));
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
  });
}

export async function idleCluster(connections: number, nodeCount: number, holdSeconds: number): Promise<IdleClusterResult> {
  const cluster = await startCluster(nodeCount, 'idle');
  const loaders: ChildProcess[] = [];
  try {
    const { nodes } = cluster;
    const target = parleyTarget();
    await target.prepare(nodes[0] as (typeof nodes)[0], connections); // sessions are in Postgres: valid on every node
    await sleep(1000);
    const before = totalRss(nodes);

    // Each node's share in two halves: all loaders connect the first, the RSS is read, then the rest.
    const per = Math.ceil(connections / nodeCount);
    const halves: [LoaderJob[], LoaderJob[]] = [[], []];
    nodes.forEach((node, k) => {
      const from = k * per;
      const count = Math.max(0, Math.min(per, connections - from));
      const first = Math.floor(count / 2);
      const job = { url: node.url, tokens: target.tokens, sources: [`127.0.${k + 1}.1`, `127.0.${k + 1}.2`] };
      halves[0].push({ ...job, from, count: first });
      halves[1].push({ ...job, from: from + first, count: count - first });
    });
    const t0 = performance.now();
    nodes.forEach(() => loaders.push(fork(LOADER, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })));
    let retries = 0;
    /** Sends loader k its job and waits until every loader has connected its share. */
    const connectAll = async (jobs: LoaderJob[]) => {
      const reports = jobs.map((job, k) => {
        const child = loaders[k] as ChildProcess;
        const r = nextReport(child, 'connected');
        child.send(job);
        return r;
      });
      retries += ((await Promise.all(reports)) as Extract<LoaderReport, { kind: 'connected' }>[]).reduce((sum, r) => sum + r.retries, 0);
    };
    await connectAll(halves[0]);
    const firstHalf = halves[0].reduce((sum, j) => sum + j.count, 0);
    await sleep(SETTLE_MS);
    const mid = totalRss(nodes);
    await connectAll(halves[1]);
    const connectSeconds = (performance.now() - t0 - SETTLE_MS) / 1000;
    console.error(`  idle cluster: ${connections} connections to ${nodeCount} nodes in ${connectSeconds.toFixed(1)} s; holding ${holdSeconds} s`);

    const cpu0 = totalCpu(nodes);
    await sleep(holdSeconds * 1000);
    const idleCpu = totalCpu(nodes) - cpu0;
    const after = totalRss(nodes);
    const reports = (await Promise.all(
      loaders.map((child) => {
        const r = nextReport(child, 'report');
        child.send('report');
        return r;
      }),
    )) as Extract<LoaderReport, { kind: 'report' }>[];

    // A fresh client on the last node still gets its own message back.
    const alive = await probeAlive(target, nodes.at(-1) as (typeof nodes)[0]);

    return {
      connections,
      nodes: nodeCount,
      connectSeconds,
      connectRetries: retries,
      heldSeconds: holdSeconds,
      stillOpen: reports.reduce((s, r) => s + r.open, 0),
      closedDuringHold: reports.reduce((s, r) => s + r.closed, 0),
      pingsAnswered: reports.reduce((s, r) => s + r.pings, 0),
      rssBeforeMiB: before / 2 ** 20,
      rssAfterMiB: after / 2 ** 20,
      bytesPerConnection: Math.round((after - before) / connections),
      marginalBytesPerConnection: Math.round((after - mid) / (connections - firstHalf)),
      idleCpuUsPerConnectionSecond: idleCpu / connections / holdSeconds,
      serverStillAnswers: alive,
    };
  } finally {
    // The load generators end with their connections (also when one failed while others connect).
    await Promise.all(
      loaders.map((c) => {
        if (c.exitCode !== null || c.signalCode !== null) return undefined;
        const exited = new Promise((r) => c.once('exit', r));
        c.kill();
        return exited;
      }),
    );
    await cluster.stop();
  }
}
