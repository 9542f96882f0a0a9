/**
 * The peers the suite compares Parley against, each a `Target`:
 * - `socketioTarget`: Socket.IO 4 with rooms, WebSocket transport only (bench/peers/socketio/server.mjs);
 * - `wsTarget`: a bare `ws` server doing the least work for Parley's frame protocol (bench/peers/ws/server.mjs);
 * - `goTarget`: gorilla/websocket built from the seed's Manager/Client design (bench/peers/go/main.go),
 *   compiled offline from Debian's packages (GOPATH mode, GO111MODULE=off, /usr/share/gocode).
 *
 * Every server listens on 127.0.0.1 at a free port, runs under `taskset -c <core>` (taskset execs,
 * so the spawned pid is the server's own) and answers GET /healthz with 200 once listening.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import { freePort } from './port.js';
import { fetchTicket } from './load.js';
import { stampOf, type BenchClient, type ConnectOptions, type RunningServer, type Target } from './target.js';
import { frameClient } from './wire.js';

/** bench/peers/, from bench/dist/src/peers.js. */
const PEERS_DIR = fileURLToPath(new URL('../../peers/', import.meta.url));
/** Where Debian's golang-*-dev packages put their Go sources. */
const DEBIAN_GOCODE = '/usr/share/gocode';
const GORILLA_SRC = join(DEBIAN_GOCODE, 'src/github.com/gorilla/websocket');
const GO_MISSING = 'Go not installed (apt-get install golang-go golang-github-gorilla-websocket-dev); skipping the Go peer';

/** Spawns `taskset -c core cmd ...args` with PORT in the environment and waits for GET /healthz → 200. */
async function startPinned(name: string, core: string, cmd: string, args: string[], env: Record<string, string> = {}): Promise<RunningServer> {
  const port = await freePort();
  const proc: ChildProcess = spawn('taskset', ['-c', core, cmd, ...args, String(port)], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  let exited: string | undefined;
  let spawnError: Error | undefined;
  proc.once('error', (err) => {
    spawnError = err;
  });
  proc.once('exit', (code, signal) => {
    exited = signal ?? `code ${code}`;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (spawnError !== undefined) throw new Error(`${name}: could not start ${cmd}: ${spawnError.message}`);
    if (exited !== undefined) throw new Error(`${name}: server exited (${exited}) before it was ready`);
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${name} on ${port} did not become ready`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    pid: proc.pid as number,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    },
  };
}

/**
 * Every peer connects as the seed does: POST /ticket with a bearer (the peers keep no accounts,
 * so the bearer is the user's name) for a one-time ticket, then the upgrade redeems it.
 */
const mintTicket = (server: RunningServer, index: number): Promise<string> => fetchTicket(server.url, `user${index}`);
const ticketOnly = async (server: RunningServer, index: number): Promise<void> => {
  await mintTicket(server, index);
};

// ---------------------------------------------------------------------------------------------
// Socket.IO
// ---------------------------------------------------------------------------------------------

export const socketioTarget: Target = {
  name: 'socket.io',
  start: (core) => startPinned('socket.io', core, process.execPath, [join(PEERS_DIR, 'socketio/server.mjs')]),
  async connect(server, index, room, onStamp, opts: ConnectOptions = {}): Promise<BenchClient> {
    const options: Partial<ManagerOptions & SocketOptions> = {
      transports: ['websocket'],
      upgrade: false,
      forceNew: true,
      reconnection: false,
      auth: { otp: await mintTicket(server, index) },
    };
    // Passed through to `ws` by engine.io-client in Node, though its typings leave them out
    // (perMessageDeflate is typed as an object; false turns the offer off).
    Object.assign(options, { perMessageDeflate: false }, opts.localAddress === undefined ? {} : { localAddress: opts.localAddress });
    const socket = io(server.url, options);
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        socket.disconnect();
        reject(err);
      };
      socket.once('connect_error', fail);
      socket.once('connect', () => {
        socket.emit('join', room, () => {
          socket.off('connect_error', fail);
          resolve();
        });
      });
    });
    socket.on('new_message', (msg: { message?: unknown }) => {
      if (typeof msg?.message !== 'string') return;
      const stamp = stampOf(msg.message);
      if (!Number.isNaN(stamp)) onStamp(stamp);
    });
    return {
      send: (stamp) => {
        if (socket.connected) socket.emit('send_message', { room, message: `@${stamp}` });
      },
      close: () => {
        socket.disconnect();
      },
    };
  },
  ticket: ticketOnly,
};

// ---------------------------------------------------------------------------------------------
// Parley-like frames over plain WebSocket (the `ws` peer and the Go peer)
// ---------------------------------------------------------------------------------------------

/** Takes a ticket and connects to `<url>/ws?otp=` with the load generator's frame client (wire.ts). */
async function connectFrames(server: RunningServer, index: number, room: string, onStamp: (stamp: number) => void, opts: ConnectOptions): Promise<BenchClient> {
  const otp = await mintTicket(server, index);
  return frameClient(`${server.url.replace(/^http/, 'ws')}/ws?otp=${otp}`, room, onStamp, opts);
}

export const wsTarget: Target = {
  name: 'ws',
  start: (core) => startPinned('ws', core, process.execPath, [join(PEERS_DIR, 'ws/server.mjs')]),
  connect: (server, index, room, onStamp, opts = {}) => connectFrames(server, index, room, onStamp, opts),
  ticket: ticketOnly,
};

// ---------------------------------------------------------------------------------------------
// Go (gorilla/websocket)
// ---------------------------------------------------------------------------------------------

const GO_DIR = join(PEERS_DIR, 'go');
const GO_BIN = join(GO_DIR, 'bin/parley-peer-go');

/**
 * Builds bench/peers/go into bench/peers/go/bin (gitignored) when the binary is missing or older
 * than main.go. Offline: GOPATH mode (GO111MODULE=off) with Debian's /usr/share/gocode on GOPATH,
 * GOPROXY=off and GOTOOLCHAIN=local, so nothing is ever fetched from the network.
 */
function buildGo(): string {
  const version = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (version.error !== undefined || version.status !== 0) throw new Error(GO_MISSING);
  if (!existsSync(join(GORILLA_SRC, 'conn.go'))) throw new Error(GO_MISSING);
  const src = join(GO_DIR, 'main.go');
  if (existsSync(GO_BIN) && statSync(GO_BIN).mtimeMs >= statSync(src).mtimeMs) return GO_BIN;
  mkdirSync(join(GO_DIR, 'bin'), { recursive: true });
  const gopath = join(tmpdir(), 'parley-bench-gopath');
  mkdirSync(gopath, { recursive: true });
  const build = spawnSync('go', ['build', '-o', GO_BIN, '.'], {
    cwd: GO_DIR,
    encoding: 'utf8',
    env: {
      ...process.env,
      GO111MODULE: 'off',
      GOPATH: `${gopath}:${DEBIAN_GOCODE}`,
      GOPROXY: 'off',
      GOFLAGS: '',
      GOTOOLCHAIN: 'local',
      GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'parley-bench-gocache'),
    },
  });
  if (build.status !== 0) throw new Error(`go build of the Go peer failed:\n${build.stderr || build.error?.message}`);
  return GO_BIN;
}

export const goTarget: Target = {
  name: 'go-gorilla',
  async start(core) {
    const bin = buildGo();
    return startPinned('go-gorilla', core, bin, []);
  },
  connect: (server, index, room, onStamp, opts = {}) => connectFrames(server, index, room, onStamp, opts),
  ticket: ticketOnly,
};

export const peerTargets: Target[] = [socketioTarget, wsTarget, goTarget];
