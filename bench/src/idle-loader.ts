/**
 * One load-generator process of the large idle run (see idle-cluster.ts): opens its share of
 * connections to one Parley node (a ticket each), answers the server's pings (the ws client
 * does that by itself), counts them, and holds. Driven over IPC by its parent:
 *
 *   parent → { url, tokens, from, count, sources }   child → { kind: 'connected', seconds }
 *   parent → 'report'                                 child → { kind: 'report', open, closed, pings }
 *   parent → 'close'                                  child exits
 *
 * A separate process because one process may hold at most 20,000 open files on this machine.
 */
import { performance } from 'node:perf_hooks';
import { parleyTarget } from './parley-target.js';
import type { BenchClient } from './target.js';

export interface LoaderJob {
  url: string;
  tokens: string[];
  /** Index of this loader's first connection (rooms and accounts follow the global index). */
  from: number;
  count: number;
  /** Source addresses to connect from (127.0.0.x), round-robin. */
  sources: string[];
}

export type LoaderReport = { kind: 'connected'; seconds: number } | { kind: 'report'; open: number; closed: number; pings: number } | { kind: 'failed'; error: string };

const send = (m: LoaderReport) => process.send?.(m);

process.once('message', async (job: LoaderJob) => {
  const target = parleyTarget();
  target.tokens.push(...job.tokens);
  const server = { url: job.url, pid: 0, stop: async () => undefined };
  const clients: BenchClient[] = [];
  let open = 0;
  let closed = 0;
  let pings = 0;
  const onPing = () => pings++;
  const onClose = () => {
    open--;
    closed++;
  };
  const t0 = performance.now();
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (next < job.count) {
          const i = job.from + next++;
          const source = job.sources[i % job.sources.length] as string;
          clients.push(await target.connect(server, i, `idle${Math.floor(i / 100)}`, () => undefined, { localAddress: source, onPing, onClose }));
          open++;
        }
      }),
    );
  } catch (err) {
    send({ kind: 'failed', error: (err as Error).message });
    process.exit(1);
  }
  send({ kind: 'connected', seconds: (performance.now() - t0) / 1000 });
  process.on('message', (m: string) => {
    if (m === 'report') send({ kind: 'report', open, closed, pings });
    if (m === 'close') {
      for (const c of clients) c.close();
      process.exit(0);
    }
  });
});
