/**
 * Test harness for several real Parley processes on Postgres and Redis: a dedicated
 * redis-server (so a test can restart it), a fresh Postgres schema, and nodes started with the
 * real CLI. Shared by the server's cluster tests and the SDK's failover tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropSchema, freshSchema, PG_URL } from './pg.js';

/** The server's CLI (dist/src/cli.js), beside the package's entry point (dist/src/index.js). */
const CLI = fileURLToPath(new URL('./cli.js', import.meta.resolve('@parley/server')));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const waitFor = async (check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> => {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** A redis-server of our own on a free port, that tests may stop and start again. */
export class OwnRedis {
  private proc: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'parley-redis-'));
  constructor(readonly port: number) {}

  static async start(): Promise<OwnRedis> {
    const r = new OwnRedis(await freePort());
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir], { stdio: 'ignore' });
    const { Redis } = await import('ioredis');
    await waitFor(async () => {
      const c = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on('error', () => undefined); // not up yet: connect() rejects, and we ask again
      try {
        await c.connect();
        return (await c.ping()) === 'PONG';
      } finally {
        c.disconnect();
      }
    }, 'redis-server');
  }

  /** Kills the server at once (SIGKILL): connections drop, pub/sub messages in flight are lost. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (p === undefined || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Node {
  port: number;
  url: string;
  proc: ChildProcess;
  /** Everything the node printed (pino JSON lines). */
  output: () => string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ClusterOptions {
  nodes: number;
  redisUrl: string;
  env?: Record<string, string>;
}

/** N nodes on one fresh Postgres schema and one Redis; `stop()` kills them and drops the schema. */
export class Cluster {
  readonly nodes: Node[] = [];
  readonly schema = freshSchema();
  readonly prefix = `parley-test:${process.pid}:${randomBytes(4).toString('hex')}:`;

  private constructor(private readonly opts: ClusterOptions) {}

  static async start(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(opts);
    for (let i = 0; i < opts.nodes; i++) c.nodes.push(await c.startNode());
    await Promise.all(c.nodes.map((n) => c.ready(n)));
    return c;
  }

  env(port: number): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PARLEY_HOST: '127.0.0.1',
      PARLEY_PORT: String(port),
      PARLEY_STORE: 'postgres',
      PARLEY_POSTGRES_URL: PG_URL,
      PARLEY_POSTGRES_SCHEMA: this.schema,
      PARLEY_BROKER: 'redis',
      PARLEY_PRESENCE: 'redis',
      PARLEY_REDIS_URL: this.opts.redisUrl,
      PARLEY_REDIS_PREFIX: this.prefix,
      PARLEY_PRESENCE_TTL_MS: '1500',
      PARLEY_RATE_LIMIT_PER_SEC: '10000',
      PARLEY_RATE_LIMIT_BURST: '10000',
      PARLEY_USER_RATE_LIMIT_PER_SEC: '0',
      PARLEY_LOG_LEVEL: 'info',
      PARLEY_SHUTDOWN_TIMEOUT_MS: '2000',
      ...this.opts.env,
    };
  }

  async startNode(port?: number, extraEnv: Record<string, string> = {}): Promise<Node> {
    const p = port ?? (await freePort());
    const proc = spawn(process.execPath, [CLI, 'start'], { env: { ...this.env(p), ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => (out += d));
    proc.stderr?.on('data', (d: Buffer) => (out += d));
    const node: Node = {
      port: p,
      url: `http://127.0.0.1:${p}`,
      proc,
      output: () => out,
      kill: async (signal = 'SIGKILL') => {
        if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
        const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
        proc.kill(signal);
        return exited;
      },
    };
    return node;
  }

  /** Starts one more node (stopped with the others by `stop()`); it is not waited for. */
  async add(extraEnv: Record<string, string> = {}): Promise<Node> {
    const node = await this.startNode(undefined, extraEnv);
    this.nodes.push(node);
    return node;
  }

  /**
   * Starts a node again on the same port (killing it first if it still runs: SIGKILL) and puts
   * the new process in its place in `nodes`; it is not waited for.
   */
  async restart(node: Node, extraEnv: Record<string, string> = {}): Promise<Node> {
    await node.kill('SIGKILL');
    const again = await this.startNode(node.port, extraEnv);
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes[i] = again;
    else this.nodes.push(again);
    return again;
  }

  /** Waits until the node serves HTTP (/healthz 200), ready or not (e.g. while Redis is down). */
  async listening(node: Node, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      if (node.proc.exitCode !== null || node.proc.signalCode !== null) throw new Error(`node ${node.port} exited (${node.proc.exitCode ?? node.proc.signalCode}) before listening; output:\n${node.output().slice(-2000)}`);
      if (await fetch(`${node.url}/healthz`).then((r) => r.status === 200, () => false)) return;
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for node ${node.port} listening; output:\n${node.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until the node answers /readyz with 200. */
  async ready(node: Node, ms = 15_000): Promise<void> {
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 200, `node ${node.port} ready; output:\n${node.output().slice(-2000)}`, ms);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill('SIGKILL')));
    await dropSchema(this.schema);
  }
}

export { waitFor };
