/**
 * The invariants of a fault run, checked at the end against the messages table the nodes
 * wrote (Postgres, the cluster's schema):
 *
 * 1. every send was acked or refused with a code (none left pending);
 * 2. every acked (room, seq) is stored, once, with the text and sender that were sent;
 * 3. no text is stored twice (each send has a unique text), and nothing is stored that nobody sent;
 * 4. every member that stayed in a room holds every stored message of the room after its join
 *    position, each exactly once, the ones that reached the app in seq order (the rest filled
 *    from history after a `gap`), with the stored text;
 * 5. no ack came before its own new_message on the connection it was sent on.
 *
 * `check` returns the violations (empty when all hold) and a few counts for the report.
 */
import pg from 'pg';
import type { Member, SendRecord } from './members.js';
import { PG_URL } from './pg.js';

export interface StoredMessage {
  room: string;
  seq: number;
  sender: string;
  body: string;
}

/** Every stored message of the schema, by room and seq. */
export async function readStored(schema: string, url = PG_URL): Promise<StoredMessage[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ room: string; seq: string; sender: string; body: string }>(`SELECT room, seq, sender, body FROM ${schema}.messages WHERE kind IS NULL ORDER BY room, seq`);
    return rows.map((r) => ({ room: r.room, seq: Number(r.seq), sender: r.sender, body: r.body }));
  } finally {
    await client.end();
  }
}

/** How many messages the schema holds. */
export async function countStored(schema: string, url = PG_URL): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.messages WHERE kind IS NULL`);
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

export interface InvariantReport {
  violations: string[];
  stored: number;
  acked: number;
  refused: Record<string, number>;
  /** Sends refused (e.g. `unavailable` while the store's answer was lost) whose text is stored all the same. */
  refusedButStored: number;
  /** Messages members got from history after a gap, and the gaps. */
  filled: number;
  gaps: number;
}

const MAX_LISTED = 25;

export function check(stored: StoredMessage[], sends: SendRecord[], members: Member[]): InvariantReport {
  const violations: string[] = [];
  const add = (v: string) => violations.push(v);
  const byKey = new Map<string, StoredMessage>();
  const byText = new Map<string, StoredMessage[]>();
  for (const m of stored) {
    byKey.set(`${m.room}\u0000${m.seq}`, m);
    const list = byText.get(m.body) ?? [];
    list.push(m);
    byText.set(m.body, list);
  }
  const sentTexts = new Set(sends.map((s) => s.text));
  const refused: Record<string, number> = {};
  let refusedButStored = 0;

  // 1–2. Each send's outcome.
  for (const s of sends) {
    if (s.state === 'pending') add(`send ${s.text} (${s.room}) never acked nor refused`);
    else if (s.state === 'refused') {
      refused[s.code ?? '?'] = (refused[s.code ?? '?'] ?? 0) + 1;
      if (byText.has(s.text)) refusedButStored++;
    } else {
      const m = byKey.get(`${s.room}\u0000${s.seq}`);
      if (m === undefined) add(`acked ${s.room}#${s.seq} (${s.text}) is not stored`);
      else if (m.body !== s.text || m.sender !== s.user) add(`acked ${s.room}#${s.seq} holds ${JSON.stringify(m.body)} by ${m.sender}, sent ${JSON.stringify(s.text)} by ${s.user}`);
    }
  }
  // 3. Stored once, and only what was sent.
  for (const [text, list] of byText) {
    if (list.length > 1) add(`${JSON.stringify(text)} stored ${list.length} times: ${list.map((m) => `${m.room}#${m.seq}`).join(', ')}`);
    if (!sentTexts.has(text)) add(`${list[0]?.room}#${list[0]?.seq} holds ${JSON.stringify(text)}, which nobody sent`);
  }
  // 4. Each member, each room.
  const byRoom = new Map<string, StoredMessage[]>();
  for (const m of stored) {
    const list = byRoom.get(m.room) ?? [];
    list.push(m);
    byRoom.set(m.room, list);
  }
  let filled = 0;
  let gaps = 0;
  for (const member of members) {
    for (const log of member.rooms.values()) {
      filled += log.filled.length;
      gaps += log.gaps;
      const who = `${member.name} in ${log.room} (joined at ${log.from})`;
      const expected = (byRoom.get(log.room) ?? []).filter((m) => m.seq > log.from);
      const got = new Map<number, number>();
      for (const r of [...log.direct, ...log.filled]) got.set(r.seq, (got.get(r.seq) ?? 0) + 1);
      const missing = expected.filter((m) => !got.has(m.seq)).map((m) => m.seq);
      if (missing.length > 0) add(`${who}: missing ${missing.length} of ${expected.length}: ${ranges(missing)}`);
      const twice = [...got].filter(([, n]) => n > 1).map(([s]) => s);
      if (twice.length > 0) add(`${who}: got ${ranges(twice)} more than once`);
      const extra = [...got.keys()].filter((s) => s <= log.from || !byKey.has(`${log.room}\u0000${s}`));
      if (extra.length > 0) add(`${who}: got ${ranges(extra)}, not stored after its join`);
      for (let i = 1; i < log.direct.length; i++) {
        const a = log.direct[i - 1];
        const b = log.direct[i];
        if (a !== undefined && b !== undefined && b.seq <= a.seq) {
          add(`${who}: ${b.seq} reached the app after ${a.seq}`);
          break;
        }
      }
      for (const r of [...log.direct, ...log.filled]) {
        const m = byKey.get(`${log.room}\u0000${r.seq}`);
        if (m !== undefined && m.body !== r.text) {
          add(`${who}: ${r.seq} arrived as ${JSON.stringify(r.text)}, stored as ${JSON.stringify(m.body)}`);
          break;
        }
      }
    }
    // 5. Acks after their own message.
    const early = member.wire.ackOrderViolations();
    if (early.length > 0) add(`${member.name}: ${early.length} ack(s) before their own new_message, first ${early[0]?.room}#${early[0]?.seq}`);
  }
  const listed = violations.length > MAX_LISTED ? [...violations.slice(0, MAX_LISTED), `… and ${violations.length - MAX_LISTED} more`] : violations;
  return { violations: listed, stored: stored.length, acked: sends.filter((s) => s.state === 'acked').length, refused, refusedButStored, filled, gaps };
}

/** 1,2,3,7,9,10 → "1–3, 7, 9–10". */
export function ranges(seqs: number[]): string {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    out.push(i === j ? String(sorted[i]) : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return out.length > 12 ? `${out.slice(0, 12).join(', ')}, …` : out.join(', ');
}
