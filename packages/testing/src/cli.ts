/**
 * The real `parley` CLI in child processes, for tests: run a command to completion, or start a
 * server and read its JSON log lines. Every child and temp dir is cleaned up after the file's
 * tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

/** The server's CLI (dist/src/cli.js), beside the package's entry point (dist/src/index.js). */
export const CLI = fileURLToPath(new URL('./cli.js', import.meta.resolve('@parley/server')));

const tempDirs: string[] = [];
const children = new Set<ChildProcess>();
export const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'parley-life-'));
  tempDirs.push(d);
  return d;
};
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** The environment without any PARLEY_* variable of the test runner's own, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PARLEY_')) env[k] = v;
  return { ...env, ...extra };
}

/** `n` distinct ports that were free a moment ago (all listened on at once with port 0, then closed). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export const freePort = async (): Promise<number> => (await freePorts(1))[0] as number;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunResult extends Exit {
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (killed after timeoutMs). */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string>; input?: string; timeoutMs?: number; /** How to start it: [command, ...its arguments before the script]. */ via?: string[] } = {},
): Promise<RunResult> {
  const [command, ...before] = opts.via ?? [process.execPath];
  return new Promise((resolve, reject) => {
    const child = spawn(command as string, [...before, CLI, ...args], { env: cleanEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface LogLine {
  level: number;
  msg: string;
  event?: string;
  user?: string;
  rooms?: number;
  code?: number;
  signal?: string;
  url?: string;
  [k: string]: unknown;
}

export interface RunningServer {
  proc: ChildProcess;
  url: string;
  port: number;
  /** Parsed pino lines from stdout so far. */
  lines: LogLine[];
  stderr: () => string;
  exited: Promise<Exit>;
  /** Sends a signal and waits for the exit (SIGKILL after timeoutMs). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

/** Starts `parley start …` and resolves once it logged "parley listening". */
export function startCli(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<RunningServer> {
  const proc = spawn(process.execPath, [CLI, 'start', ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const lines: LogLine[] = [];
  let stderr = '';
  let rest = '';
  const exited = new Promise<Exit>((resolve) => proc.once('close', (code, signal) => resolve({ code, signal })));
  void exited.then(() => children.delete(proc));
  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`server did not start in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    proc.stderr!.on('data', (c: Buffer) => (stderr += c));
    proc.stdout!.on('data', (c: Buffer) => {
      rest += c;
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) {
        if (p.trim() === '') continue;
        const line = JSON.parse(p) as LogLine;
        lines.push(line);
        if (!ready && line.msg === 'parley listening' && typeof line.url === 'string') {
          ready = true;
          clearTimeout(timer);
          const url = line.url.replace('localhost', '127.0.0.1');
          const server: RunningServer = {
            proc,
            url,
            port: Number(new URL(url).port),
            lines,
            stderr: () => stderr,
            exited,
            stop: async (signal = 'SIGTERM', stopTimeoutMs = 10_000) => {
              if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
              const t = setTimeout(() => proc.kill('SIGKILL'), stopTimeoutMs);
              const e = await exited;
              clearTimeout(t);
              return e;
            },
          };
          resolve(server);
        }
      }
    });
    void exited.then((e) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`server exited (${e.code ?? e.signal}) before listening; stderr: ${stderr}`));
    });
  });
}

