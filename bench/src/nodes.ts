/** Starting Parley nodes for benchmarks: the real CLI, pinned to a core with taskset. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from './port.js';

export const PG_URL = process.env.PARLEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.PARLEY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export const CLI = fileURLToPath(new URL('../../../packages/server/dist/src/cli.js', import.meta.url));
/** The flags the `parley` command gives node (its `#!/usr/bin/env -S node …` line): nodes run as users run them. */
export const NODE_FLAGS = (readFileSync(CLI, 'utf8').split('\n', 1)[0] as string).split(' ').slice(3);

export interface BenchNode {
  url: string;
  port: number;
  dataDir: string;
  pid: number;
  proc: ChildProcess;
  stop(): Promise<void>;
  /** Sends `signal` and resolves with the exit code once it exited (null after a signal it did not handle). */
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Where a node listens and keeps its SQLite file: given to start one again in the same place. */
export interface NodePlace {
  port: number;
  dataDir: string;
}

/** How long startParley waits for the node, and for what: /readyz 200 (default), or /healthz (serving, maybe degraded). */
export interface StartOptions {
  place?: NodePlace;
  waitFor?: 'ready' | 'listening';
  /** Output: 'inherit' (default) or 'ignore'. */
  stdio?: 'inherit' | 'ignore';
}

/**
 * Starts `parley start` under `taskset -c <core>` with the given environment and waits for
 * /readyz. `cli`: another build's cli.js (the previous commit's, to compare a change with).
 */
export async function startParley(env: Record<string, string>, core = '0', cli = CLI, options: StartOptions = {}): Promise<BenchNode> {
  const port = options.place?.port ?? (await freePort());
  const dataDir = options.place?.dataDir ?? mkdtempSync(join(tmpdir(), 'parley-bench-'));
  // BENCH_CPU_PROF=<dir>: write a V8 CPU profile of each node to <dir> when it stops.
  const prof = process.env.BENCH_CPU_PROF;
  const nodeArgs = prof === undefined ? NODE_FLAGS : [...NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${prof}`];
  const proc = spawn('taskset', ['-c', core, process.execPath, ...nodeArgs, cli, 'start'], {
    env: {
      ...process.env,
      PARLEY_HOST: '127.0.0.1',
      PARLEY_PORT: String(port),
      PARLEY_DATA_DIR: dataDir,
      PARLEY_LOG_LEVEL: 'warn',
      PARLEY_RATE_LIMIT_PER_SEC: '1000',
      PARLEY_RATE_LIMIT_BURST: '1000',
      PARLEY_USER_RATE_LIMIT_PER_SEC: '0',
      PARLEY_LOGIN_MAX_FAILURES: '1000',
      // The load generator is one address with thousands of connections over a few accounts.
      PARLEY_REGISTER_MAX_PER_ADDRESS: '100000',
      PARLEY_TICKET_RATE_LIMIT_PER_MIN: '0',
      PARLEY_MAX_CONNECTIONS_PER_USER: '0',
      PARLEY_MAX_CONNECTIONS_PER_ADDRESS: '0',
      ...env,
    },
    stdio: ['ignore', options.stdio ?? 'inherit', options.stdio ?? 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/${options.waitFor === 'listening' ? 'healthz' : 'readyz'}`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`node on ${port} did not become ready`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const kill = async (signal: NodeJS.Signals): Promise<number | null> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
    const done = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill(signal);
    return done;
  };
  return {
    url,
    port,
    dataDir,
    pid: proc.pid as number,
    proc,
    stop: async () => {
      await kill('SIGTERM');
    },
    kill,
  };
}

export interface BenchCluster {
  nodes: BenchNode[];
  /** Stops the nodes, drops their Postgres schema and their Redis keys. */
  stop(): Promise<void>;
}

/** `count` nodes on one Postgres schema and one Redis prefix of their own (removed by stop()). */
export async function startCluster(count: number, tag: string, extraEnv: Record<string, string> = {}, pgUrl = PG_URL, redisUrl = REDIS_URL): Promise<BenchCluster> {
  const schema = `parley_bench_${tag}_${process.pid}`;
  const prefix = `parley-bench:${process.pid}:${tag}:`;
  const env = {
    PARLEY_STORE: 'postgres',
    PARLEY_POSTGRES_URL: pgUrl,
    PARLEY_POSTGRES_SCHEMA: schema,
    PARLEY_BROKER: 'redis',
    PARLEY_PRESENCE: 'redis',
    PARLEY_REDIS_URL: redisUrl,
    PARLEY_REDIS_PREFIX: prefix,
    ...extraEnv,
  };
  const nodes: BenchNode[] = [];
  for (let i = 0; i < count; i++) nodes.push(await startParley(env));
  return {
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      const c = new pg.Client({ connectionString: pgUrl });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
      const r = new Redis(redisUrl);
      const keys = await r.keys(`${prefix}*`);
      if (keys.length > 0) await r.del(...keys);
      r.disconnect();
    },
  };
}
