/**
 * Runtime validation of client events. The shapes come from @parley/protocol (the one source of
 * truth): each schema is checked at compile time to produce exactly the protocol's payload type.
 * Name rules (room pattern, lengths) are checked by the handlers so they can answer with their
 * own error codes (invalid_room, message_too_long).
 */
import { z } from 'zod';
import { type ClientEvents, type ClientEventType, isStorableText, MAX_HISTORY_PAGE, MAX_MUTE_MS, MAX_REASON_LENGTH, MAX_REF_LENGTH, MAX_TITLE_LENGTH, type Ref, ROLES } from '@parley/protocol';

const name = z.string();
/** Text a store keeps byte for byte (see isStorableText). */
const text = z.string().min(1).refine(isStorableText, 'contains U+0000 or a lone surrogate, which no store can keep');
const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/**
 * `resume`'s rooms: an object of seqs. Not z.record, which drops an own `__proto__` key (a valid
 * room name) and reports an issue per bad entry: this stops at the first bad entry, and the Hub
 * counts the keys against maxRoomsPerConnection before anything else (a 64 KB frame holds
 * thousands). The object is passed on as parsed, with its own keys only.
 */
const seqsByRoom = z.custom<Record<string, number>>(
  (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    for (const k in v) if (Object.hasOwn(v, k) && !seq.safeParse((v as Record<string, unknown>)[k]).success) return false;
    return true;
  },
  { message: 'must be an object of room name → seq (an integer ≥ 0)' },
);

/** A room title or a moderation reason: storable text, bounded (empty is allowed). */
const note = (max: number) => z.string().max(max).refine(isStorableText, 'contains U+0000 or a lone surrogate, which no store can keep');
const target = { room: name, user: name };

export const clientEventSchemas = {
  send_message: z.object({ message: text, room: name.optional() }),
  change_room: z.object({ name }),
  join: z.object({ room: name }),
  leave: z.object({ room: name }),
  history: z.object({ room: name, before: seq.optional(), limit: z.number().int().min(1).max(MAX_HISTORY_PAGE).optional() }),
  resume: z.object({ rooms: seqsByRoom }),
  typing: z.object({ room: name }),
  create_room: z.object({ room: name, visibility: z.enum(['public', 'private']), title: note(MAX_TITLE_LENGTH).optional() }),
  invite: z.object(target),
  kick: z.object({ ...target, reason: note(MAX_REASON_LENGTH).optional() }),
  ban: z.object({ ...target, reason: note(MAX_REASON_LENGTH).optional() }),
  unban: z.object(target),
  mute: z.object({ ...target, durationMs: z.number().int().min(1).max(MAX_MUTE_MS).optional() }),
  unmute: z.object(target),
  set_role: z.object({ ...target, role: z.enum(ROLES) }),
  open_direct: z.object({ user: name }),
} satisfies { [K in ClientEventType]: z.ZodType<ClientEvents[K]> };

/** The schemas by event type, typed by the event they check (for callers generic in the type). */
export type ClientEventSchemas = { [K in ClientEventType]: z.ZodType<ClientEvents[K]> };
export const eventSchemas: ClientEventSchemas = clientEventSchemas;

export const isClientEventType = (t: string): t is ClientEventType => Object.hasOwn(clientEventSchemas, t);

export const isRef = (r: unknown): r is Ref =>
  (typeof r === 'string' && r.length > 0 && r.length <= MAX_REF_LENGTH && isStorableText(r)) || (typeof r === 'number' && Number.isSafeInteger(r));
