/**
 * One load-generator process of the large idle run (see idle-cluster.ts): opens its share of
 * connections to one Parley node (a ticket each), counts the server's pings (wire.ts answers
 * them) and holds. Driven over IPC by its parent:
 *
 *   parent → { url, tokens, from, count, sources }   child → { kind: 'connected', seconds, retries }
 *   (again for the next share: a loader may get several jobs, one after the other)
 *   parent → 'report'                                 child → { kind: 'report', open, closed, pings }
 *   the parent ends it with SIGTERM
 *
 * A separate process because one process may hold at most 20,000 open files on this machine.
 */
import { performance } from 'node:perf_hooks';
import { parleyTarget } from './parley-target.js';
import type { BenchClient } from './target.js';
import { inPool } from './workload.js';

export interface LoaderJob {
  url: string;
  tokens: string[];
  /** Index of this loader's first connection (rooms and accounts follow the global index). */
  from: number;
  count: number;
  /** Source addresses to connect from (127.0.0.x), round-robin. */
  sources: string[];
}

export type LoaderReport = { kind: 'connected'; seconds: number; retries: number } | { kind: 'report'; open: number; closed: number; pings: number } | { kind: 'failed'; error: string };

const send = (m: LoaderReport) => process.send?.(m);

const target = parleyTarget();
const clients: BenchClient[] = [];
let open = 0;
let closed = 0;
let pings = 0;
const onPing = () => pings++;
const onClose = () => {
  open--;
  closed++;
};

async function run(job: LoaderJob): Promise<void> {
  if (target.tokens.length === 0) target.tokens.push(...job.tokens);
  const server = { url: job.url, pid: 0, stop: async () => undefined };
  let retries = 0;
  const t0 = performance.now();
  try {
    await inPool(job.count, 100, async (k) => {
      const i = job.from + k;
      const source = job.sources[i % job.sources.length] as string;
      // A connection attempt that fails (say, a keep-alive socket the server closed just as
      // the ticket request went out) is retried twice and counted.
      for (let attempt = 1; ; attempt++) {
        try {
          clients.push(await target.connect(server, i, `idle${Math.floor(i / 100)}`, () => undefined, { localAddress: source, onPing, onClose }));
          break;
        } catch (err) {
          if (attempt === 3) throw err;
          retries++;
        }
      }
      open++;
    });
  } catch (err) {
    const e = err as Error & { cause?: Error };
    send({ kind: 'failed', error: `${e.message}${e.cause === undefined ? '' : `: ${e.cause.message}`}` });
    process.exit(1);
  }
  send({ kind: 'connected', seconds: (performance.now() - t0) / 1000, retries });
}

process.on('message', (m: LoaderJob | 'report') => {
  if (m === 'report') send({ kind: 'report', open, closed, pings });
  else void run(m);
});
