/**
 * Smoke test of the benchmark targets (Parley and its peers): for each, start the server (pinned to core 0, or PEERS_CORE),
 * check that it refuses a ticket request without a bearer and an upgrade without a valid ticket,
 * connect 3 clients to one room, send 5 stamped messages from one of them, and check that every
 * client received all 5 stamps. Prints OK / FAIL / SKIP per target; exits 1 if any failed.
 *
 *   node bench/dist/src/peers-smoke.js [parley|socket.io|ws|go-gorilla ...]
 */
import { io } from 'socket.io-client';
import { parleyTarget } from './parley-target.js';
import { goTarget, socketioTarget, wsTarget } from './peers.js';
import type { BenchClient, RunningServer, Target } from './target.js';
import { openWire } from './wire.js';

const CLIENTS = 3;
const MESSAGES = 5;
const TIMEOUT_MS = 5_000;
const core = process.env.PEERS_CORE ?? '0';

/** Resolves with how the server answered an upgrade carrying a ticket it never issued. */
function bogusUpgrade(target: Target, server: RunningServer): Promise<string> {
  return new Promise((resolve) => {
    if (target === socketioTarget) {
      const socket = io(server.url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { otp: 'bogus' } });
      socket.once('connect', () => resolve('connected'));
      socket.once('connect_error', (err) => resolve(err.message));
      return;
    }
    openWire(`${server.url.replace(/^http/, 'ws')}/ws?otp=bogus`, { onMessage: () => undefined }).then(
      (wire) => {
        wire.close();
        resolve('connected');
      },
      (err: Error) => resolve(/^upgrade refused: HTTP\/1\.1 (\d+)/.exec(err.message)?.[1] ?? err.message),
    );
  });
}

async function smoke(target: Target): Promise<'OK' | 'SKIP'> {
  let server: RunningServer;
  try {
    server = await target.start(core);
  } catch (err) {
    const msg = (err as Error).message;
    if (target === goTarget && msg.startsWith('Go not installed')) {
      console.log(`SKIP ${target.name}: ${msg}`);
      return 'SKIP';
    }
    throw err;
  }
  const clients: BenchClient[] = [];
  try {
    await target.prepare?.(server, CLIENTS);
    const noBearer = await fetch(`${server.url}/ticket`, { method: 'POST' });
    if (noBearer.status !== 401) throw new Error(`/ticket without a bearer answered ${noBearer.status}, expected 401`);
    const bogus = await bogusUpgrade(target, server);
    if (bogus !== (target === socketioTarget ? 'unauthorized' : '401')) throw new Error(`an upgrade with a bogus ticket got ${bogus}`);
    const received: number[][] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const got: number[] = [];
      received.push(got);
      clients.push(await target.connect(server, i, 'smoke-room', (stamp) => got.push(stamp)));
    }
    const stamps = Array.from({ length: MESSAGES }, (_, i) => 1000.5 + i);
    for (const s of stamps) clients[0]!.send(s);
    const deadline = Date.now() + TIMEOUT_MS;
    while (received.some((r) => r.length < MESSAGES) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100)); // anything extra would show up as a duplicate
    const want = stamps.join(',');
    received.forEach((r, i) => {
      const have = [...r].sort((a, b) => a - b).join(',');
      if (have !== want) throw new Error(`client ${i} received [${have}], expected [${want}]`);
    });
    return 'OK';
  } finally {
    for (const c of clients) c.close();
    await server.stop();
  }
}

const all = [parleyTarget(), socketioTarget, wsTarget, goTarget];
const wanted = process.argv.slice(2);
const targets = wanted.length === 0 ? all : all.filter((t) => wanted.includes(t.name));
let failed = 0;
for (const t of targets) {
  const started = Date.now();
  try {
    if ((await smoke(t)) === 'OK') console.log(`OK   ${t.name} (${Date.now() - started} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${t.name}: ${(err as Error).message}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
