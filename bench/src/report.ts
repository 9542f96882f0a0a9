/** Markdown tables and an SVG bar chart from the suite's results. */
import { passes } from './workload.js';

type Json = Record<string, unknown>;
type Results = Record<string, Record<string, Json>>;

const num = (v: unknown, digits = 0): string => (typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—');
const best = (r: Json | undefined): Json | undefined => (r?.best ?? undefined) as Json | undefined;
export const pct = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? `${Math.round(v * 100)}%` : '—');
/** Steal on the server's core / the generator's core during a step. */
export const stolen = (r: { steal?: unknown } | undefined): string => {
  const s = r?.steal as number[] | undefined;
  return s === undefined ? '—' : `${pct(s[0])} / ${pct(s[1])}`;
};
/** The first step of a rising run that failed (ratio below 1 or p99 over 250 ms), described; or `none`. */
const failing = (r: Json, none: string): string => {
  const fail = ((r.steps as Json[]) ?? []).find((s) => !passes(s as { deliveredRatio: number; p99: number }));
  if (fail === undefined) return none;
  return `${num(fail.offeredPerSec)}/s offered: ratio ${num(fail.deliveredRatio, 4)}, p99 ${num(fail.p99, 0)} ms; cores: server ${pct(fail.serverCpuShare)}, generator ${pct(fail.loaderCpuShare)}, stolen ${stolen(fail)}`;
};

/** The report of one run; `date` is the run's own (ISO-8601, as results.json records it), never today's. */
export function renderMarkdown(results: Results, machine: string, date: string): string {
  const lines: string[] = [`Measured ${date.slice(0, 10)} on ${machine}.`, ''];
  const table = (title: string, head: string[], rows: string[][]) => {
    if (rows.length === 0) return;
    lines.push(`**${title}**`, '', `| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`), '');
  };
  const fan = results.fanout ?? {};
  table(
    'Fan-out: 1,000 clients in one room, 10 senders at 5 msg/s (50,000 deliveries/s offered)',
    ['server', 'deliveries/s', 'delivered ratio', 'p50 ms', 'p99 ms', 'server CPU µs / delivery', 'server RSS MiB', 'stolen (server / generator core)'],
    Object.entries(fan).map(([t, r]) => [t, num(r.deliveriesPerSec), num(r.deliveredRatio, 4), num(r.p50, 1), num(r.p99, 1), num(r.cpuUsPerDelivery, 2), num((r.rssBytes as number) / 2 ** 20, 0), stolen(r)]),
  );
  const rise = results.rise ?? {};
  table(
    'Fan-out under pressure: highest rate with delivered ratio 1.0 and p99 ≤ 250 ms',
    ['server', 'deliveries/s', 'p99 ms', 'server CPU µs / delivery', 'server core', 'generator core', 'stolen (server / generator core)', 'first failing step'],
    Object.entries(rise).map(([t, r]) => {
      const b = best(r);
      return [t, num(b?.deliveriesPerSec), num(b?.p99, 1), num(b?.cpuUsPerDelivery, 2), pct(b?.serverCpuShare), pct(b?.loaderCpuShare), stolen(b), failing(r, 'none (load generator limit)')];
    }),
  );
  const rooms = results.rooms ?? {};
  table(
    'Many small rooms: 10,000 clients in rooms of 10, every client sending (Parley stores every message in SQLite)',
    ['server', 'highest passing msg/s per client', 'deliveries/s', 'p99 ms', 'server CPU µs / delivery', 'server core', 'generator core', 'stolen (server / generator core)', 'first failing step'],
    Object.entries(rooms).map(([t, r]) => {
      const b = best(r);
      return [t, num(b?.ratePerSender, 2), num(b?.deliveriesPerSec), num(b?.p99, 1), num(b?.cpuUsPerDelivery, 2), pct(b?.serverCpuShare), pct(b?.loaderCpuShare), stolen(b), failing(r, 'none')];
    }),
  );
  const idle = results.idle ?? {};
  const idleMax = results['idle-max'] ?? {};
  table(
    'Idle capacity: RSS per idle connection (heartbeats on)',
    ['server', 'connections', 'bytes / connection', 'marginal bytes / connection', 'connections (large run)', 'bytes / connection', 'marginal', 'still answering'],
    Object.entries(idle).map(([t, r]) => [
      t,
      num(r.connections),
      num(r.bytesPerConnection),
      num(r.marginalBytesPerConnection),
      num(idleMax[t]?.connections),
      num(idleMax[t]?.bytesPerConnection),
      num(idleMax[t]?.marginalBytesPerConnection),
      idleMax[t] === undefined ? '—' : String(idleMax[t]?.serverStillAnswers),
    ]),
  );
  const many = results['idle-cluster'] ?? {};
  table(
    'Holding 100,000 idle connections, heartbeats on (nodes on one Postgres + Redis, all on core 0: one process may open 20,000 files here)',
    ['server', 'nodes', 'connections', 'open after the hold', 'held s', 'pings answered', 'bytes / connection', 'marginal', 'idle CPU µs / connection / s', 'still answering'],
    Object.entries(many).map(([t, r]) => [t, num(r.nodes), num(r.connections), num(r.stillOpen), num(r.heldSeconds), num(r.pingsAnswered), num(r.bytesPerConnection), num(r.marginalBytesPerConnection), num(r.idleCpuUsPerConnectionSecond, 3), String(r.serverStillAnswers)]),
  );
  const conn = results.connect ?? {};
  table(
    'Connect storm: 10,000 connections, 200 at a time, each a ticket over HTTP (POST /ticket) + the upgrade that redeems it',
    ['server', 'connects/s', 'server CPU µs / connect', 'ticket request alone, µs', 'the rest (upgrade + join), µs'],
    Object.entries(conn).map(([t, r]) => [t, num(r.connectsPerSec), num(r.serverCpuUsPerConnect), num(r.serverCpuUsPerTicket), num(Number(r.serverCpuUsPerConnect) - Number(r.serverCpuUsPerTicket))]),
  );
  // The members variants beside today's, per server: idle cost and connect cost.
  const idleM = results['idle-members'] ?? {};
  const connM = results['connect-members'] ?? {};
  const servers = [...new Set([...Object.keys(idleM), ...Object.keys(connM)])];
  const row = (t: string, label: string, i: Json | undefined, c: Json | undefined): string[] => [
    t,
    label,
    num(i?.connections),
    num(i?.bytesPerConnection),
    num(i?.marginalBytesPerConnection),
    num(c?.connectsPerSec),
    num(c?.serverCpuUsPerConnect),
    num(c?.serverCpuUsPerTicket),
    num(Number(c?.serverCpuUsPerConnect) - Number(c?.serverCpuUsPerTicket)),
  ];
  table(
    'With memberships: idle (heartbeats on) and connect storm (200 at a time), each connection in its account\'s rooms, beside today\'s variants (one room joined after connect)',
    ['server', 'variant', 'idle connections', 'bytes / connection', 'marginal', 'connects/s', 'server CPU µs / connect', 'ticket alone, µs', 'the rest, µs'],
    servers.flatMap((t) => {
      const m = idleM[t] ?? connM[t];
      const k = num(m?.roomsPerConnection);
      return [row(t, "today's variants: join 1 room after connect", idle[t], conn[t]), row(t, `${k} rooms, ${String(m?.entry ?? '')}`, idleM[t], connM[t])];
    }),
  );
  if (Object.values({ ...idleM, ...connM }).some((r) => String(r.entry).startsWith('stored'))) {
    lines.push(
      "On a build with stored memberships, today's variants are not one room per connection: each `join` makes the account (50 accounts share the connections) a member, " +
        'and every open connection of that account follows the new room (`invited`, then `joined`). In the idle workload (rooms idle0 … idle99, two connections per account per room) ' +
        'connection i ends up following the rooms from its own to idle99, 50.5 on average; in the storm, everything is in one room.',
      '',
    );
  }
  return lines.join('\n');
}

/** Two panels of horizontal bars: CPU per delivery at 50k/s (lower is better) and the highest fan-out rate (higher is better). */
export function renderChart(results: Results): string {
  type Panel = { title: string; unit: string; bars: [string, number][] };
  const bar = (t: string, v: unknown): [string, number] => [t, typeof v === 'number' ? v : NaN];
  const panels: Panel[] = [
    { title: 'Server CPU per delivered message at 50,000 deliveries/s (µs, lower is better)', unit: 'µs', bars: Object.entries(results.fanout ?? {}).map(([t, r]) => bar(t, r.cpuUsPerDelivery)) },
    { title: 'Highest fan-out rate with every message delivered and p99 ≤ 250 ms (deliveries/s)', unit: '/s', bars: Object.entries(results.rise ?? {}).map(([t, r]) => bar(t, best(r)?.deliveriesPerSec ?? 0)) },
    { title: 'RSS per idle connection (bytes, lower is better)', unit: 'B', bars: Object.entries(results.idle ?? {}).map(([t, r]) => bar(t, r.bytesPerConnection)) },
  ].filter((p) => p.bars.length > 0);
  const W = 760;
  const barH = 22;
  const left = 110;
  let y = 20;
  const parts: string[] = [];
  const colors: Record<string, string> = { parley: '#4f46e5', 'parley (writeDelayMs 10)': '#818cf8', ws: '#64748b', 'socket.io': '#0ea5e9', 'go-gorilla': '#14b8a6' };
  for (const p of panels) {
    parts.push(`<text x="10" y="${y}" font-size="14" font-weight="600">${p.title}</text>`);
    y += 12;
    const max = Math.max(...p.bars.map(([, v]) => (Number.isFinite(v) ? v : 0)), 1e-9);
    for (const [name, v] of p.bars) {
      const w = Number.isFinite(v) ? Math.max(1, ((W - left - 120) * v) / max) : 0;
      parts.push(`<text x="${left - 8}" y="${y + 16}" font-size="13" text-anchor="end">${name}</text>`);
      parts.push(`<rect x="${left}" y="${y + 3}" width="${w.toFixed(1)}" height="${barH - 6}" fill="${colors[name] ?? '#888'}" rx="3"/>`);
      parts.push(`<text x="${(left + w + 6).toFixed(1)}" y="${y + 16}" font-size="12">${Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : 'n/a'} ${p.unit}</text>`);
      y += barH;
    }
    y += 24;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="system-ui, sans-serif"><rect width="100%" height="100%" fill="#fff"/>${parts.join('')}</svg>\n`;
}
