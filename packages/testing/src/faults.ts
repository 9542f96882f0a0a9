/**
 * Faults caused for real on a cluster's processes (no hook inside the server), and what a fault
 * test reads back from them:
 *
 * - `commandConnection` / `killCommandConnection`: a node's Redis command connection (the one it
 *   publishes on), found in CLIENT LIST by its name `parley:<node>:command` (CLIENT SETNAME) or,
 *   for a server that does not name its connections, by the node's local TCP port: the node's
 *   open sockets (/proc/<pid>/fd) matched to /proc/net/tcp, then the one of its connections to
 *   this Redis that is not subscribed. `CLIENT KILL` drops it: ioredis reconnects it after 200 ms,
 *   and a publish meanwhile fails at once (no offline queue): one publication lost.
 * - `channelWatch`: a Redis subscriber of our own on a room's channel, to tell a publication
 *   that went out from one that was lost.
 * - `scrape`: a node's GET /metrics, parsed.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Node } from './cluster.js';

/** The node id a node logged in its "parley listening" line, if it did. */
export function nodeIdOf(node: Node): string | undefined {
  for (const line of node.output().split('\n')) {
    if (!line.includes('parley listening')) continue;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && 'node' in parsed && typeof parsed.node === 'string') return parsed.node;
    } catch {
      // not a JSON line
    }
  }
  return undefined;
}

export interface RedisClientInfo {
  id: string;
  addr: string;
  name: string;
  /** Channels it is subscribed to. */
  sub: number;
  psub: number;
  cmd: string;
}

/** A short-lived connection of our own (no retries: the caller wants an answer now). */
async function connection(redisUrl: string): Promise<Redis> {
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  await r.connect();
  return r;
}

export async function clientList(redisUrl: string): Promise<RedisClientInfo[]> {
  const r = await connection(redisUrl);
  try {
    const text = String(await r.call('CLIENT', 'LIST'));
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const f = new Map<string, string>();
        for (const kv of l.trim().split(' ')) {
          const i = kv.indexOf('=');
          if (i > 0) f.set(kv.slice(0, i), kv.slice(i + 1));
        }
        return { id: f.get('id') ?? '', addr: f.get('addr') ?? '', name: f.get('name') ?? '', sub: Number(f.get('sub') ?? 0), psub: Number(f.get('psub') ?? 0), cmd: f.get('cmd') ?? '' };
      });
  } finally {
    r.disconnect();
  }
}

/** Local ports of the TCP connections process `pid` has open to 127.0.0.1:`remotePort`. */
export function localPortsTo(pid: number, remotePort: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1] !== undefined) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  const remoteHex = `0100007F:${remotePort.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    const [, local, remote, state, , , , , , inode] = cols;
    if (local === undefined || remote !== remoteHex || state !== '01' || inode === undefined || !inodes.has(inode)) continue;
    ports.push(parseInt(local.split(':')[1] ?? '0', 16));
  }
  return ports;
}

/** How the command connection was found, for the test's report. */
export type FoundBy = 'name' | 'local port';

/** The node's Redis command connection: by its name, else by the node's local port (see above). */
export async function commandConnection(redisUrl: string, node: Node, ms = 10_000): Promise<{ client: RedisClientInfo; by: FoundBy }> {
  // Right after a Redis restart the node may still be reconnecting: look again for a while.
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await findCommandConnection(redisUrl, node);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function findCommandConnection(redisUrl: string, node: Node): Promise<{ client: RedisClientInfo; by: FoundBy }> {
  const clients = await clientList(redisUrl);
  const id = nodeIdOf(node);
  if (id !== undefined) {
    const named = clients.find((c) => c.name === `parley:${id}:command`);
    if (named !== undefined) return { client: named, by: 'name' };
  }
  const pid = node.proc.pid;
  if (pid === undefined) throw new Error('the node has no pid');
  const ports = new Set(localPortsTo(pid, Number(new URL(redisUrl).port)));
  const own = clients.filter((c) => ports.has(Number(c.addr.split(':').at(-1))));
  const command = own.filter((c) => c.sub === 0 && c.psub === 0 && c.cmd !== 'subscribe');
  if (command.length !== 1) throw new Error(`expected one command connection of pid ${pid} among ${JSON.stringify(own)}`);
  return { client: command[0] as RedisClientInfo, by: 'local port' };
}

/** CLIENT KILL of the node's command connection; returns how it was found. */
export async function killCommandConnection(redisUrl: string, node: Node): Promise<FoundBy> {
  const { client, by } = await commandConnection(redisUrl, node);
  const r = await connection(redisUrl);
  try {
    const killed = Number(await r.call('CLIENT', 'KILL', 'ID', client.id));
    if (killed !== 1) throw new Error(`CLIENT KILL ID ${client.id} killed ${killed}`);
  } finally {
    r.disconnect();
  }
  return by;
}

/** Our own subscriber on a channel: what was published on it, as it came. */
export class ChannelWatch {
  readonly payloads: string[] = [];
  private constructor(private readonly r: Redis) {}

  static async start(redisUrl: string, channel: string): Promise<ChannelWatch> {
    const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0 });
    r.on('error', () => undefined);
    await r.connect();
    const w = new ChannelWatch(r);
    r.on('message', (_c: string, payload: string) => w.payloads.push(payload));
    await r.subscribe(channel);
    return w;
  }

  /** Whether a publication containing `text` went out. */
  saw(text: string): boolean {
    return this.payloads.some((p) => p.includes(text));
  }

  close(): void {
    this.r.disconnect();
  }
}

/** A node's metrics: every sample by its series (`name{labels}`) and summed by name. */
export class Scrape {
  constructor(readonly samples: Map<string, number>) {}

  /** The sum of every series of `name` (all label sets), 0 when there is none. */
  total(name: string): number {
    let sum = 0;
    for (const [series, v] of this.samples) if (series === name || series.startsWith(`${name}{`)) sum += v;
    return sum;
  }

  has(name: string): boolean {
    for (const series of this.samples.keys()) if (series === name || series.startsWith(`${name}{`)) return true;
    return false;
  }
}

/** GET /metrics of a node, parsed; undefined when it does not answer 200 (no /metrics, node down). */
export async function scrape(url: string): Promise<Scrape | undefined> {
  let res: Response;
  try {
    res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
  } catch {
    return undefined;
  }
  if (res.status !== 200) return undefined;
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    const value = Number(line.slice(cut + 1));
    if (cut > 0 && Number.isFinite(value)) samples.set(line.slice(0, cut), value);
  }
  return new Scrape(samples);
}

export interface LostPublication {
  seq: number;
  text: string;
  /** How the command connection was found. */
  by: FoundBy;
  tries: number;
}

/**
 * Loses one publication for real: kills the node's command connection (CLIENT KILL) and at once
 * sends one message through the node (`send`, resolving with its ack), then looks whether it
 * went out on `channel` (our own subscriber). If it did (the reconnect won the race), waits for
 * it to be `delivered` and tries again, up to `tries` times. Resolves with the lost message.
 */
export async function losePublication(
  redisUrl: string,
  node: Node,
  channel: string,
  send: () => Promise<{ text: string; seq: number }>,
  delivered: (seq: number) => Promise<void>,
  tries = 5,
): Promise<LostPublication> {
  const watch = await ChannelWatch.start(redisUrl, channel);
  try {
    for (let t = 1; t <= tries; t++) {
      const by = await killCommandConnection(redisUrl, node);
      const { text, seq } = await send();
      await new Promise((r) => setTimeout(r, 500));
      if (!watch.saw(text)) return { seq, text, by, tries: t };
      await delivered(seq);
    }
  } finally {
    watch.close();
  }
  throw new Error(`no publication was lost in ${tries} tries (the command connection always reconnected first)`);
}
