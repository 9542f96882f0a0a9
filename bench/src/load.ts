/**
 * What every benchmark reads and sends outside a WebSocket: a JSON POST, and a process's CPU
 * time and resident memory from /proc.
 */
import { readFileSync } from 'node:fs';

/** POSTs JSON (with a bearer token when given) and returns the JSON answer; throws on an error status (409 from /register is fine). */
export const post = async (url: string, path: string, body: unknown, token?: string): Promise<Record<string, string>> => {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url + path, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as Record<string, string>;
  if (!res.ok && !(path === '/register' && res.status === 409)) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
};

/** POST /ticket with a bearer: the one-time ticket for one WebSocket upgrade (Parley and every peer). */
export const fetchTicket = async (url: string, bearer: string): Promise<string> => {
  const otp = (await post(url, '/ticket', undefined, bearer)).otp;
  if (otp === undefined) throw new Error('/ticket answered without an otp');
  return otp;
};

/** CPU time (user + system) a process has used, in µs. */
export function cpuMicros(pid: number): number {
  // /proc/<pid>/stat fields 14 and 15 (utime, stime) in clock ticks; the name may contain spaces.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLK_TCK;
}

/** Resident set size of a process, in bytes, from /proc. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) * 1024;
}

/** Per core (index = core number): ticks spent so far in all, and stolen by the hypervisor (a virtual machine's `steal`), from one read of /proc/stat. */
export function coreTicks(): { total: number; steal: number }[] {
  const out: { total: number; steal: number }[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) /.exec(line);
    if (m === null) continue;
    // cpuN user nice system idle iowait irq softirq steal guest guest_nice
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    out[Number(m[1])] = { total: f.reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
  }
  return out;
}

/** Linux's USER_HZ, fixed at 100 on every architecture Node runs on. */
const CLK_TCK = 100;
