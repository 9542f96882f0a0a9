/** Formatting of times, days, user colours and room events. Pure functions, no DOM. */
import type { Role, RoomEvent } from '@parley/protocol';

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'long', day: 'numeric' });

const parse = (iso: string): Date => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? new Date() : d;
};

/** "3:07 PM" / "15:07" in the reader's locale. */
export const timeLabel = (iso: string): string => timeFmt.format(parse(iso));

/** "Friday, 21 November 2025 at 15:07": for the title (tooltip) of a time. */
export const fullLabel = (iso: string): string => fullFmt.format(parse(iso));

/** A local calendar day, as a key: messages on different keys get a day separator. */
export function dayKey(iso: string): string {
  const d = parse(iso);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** "Today", "Yesterday", "Monday, November 17" or "November 17, 2024". */
export function dayLabel(iso: string, now = new Date()): string {
  const d = parse(iso);
  const key = dayKey(iso);
  if (key === dayKey(now.toISOString())) return 'Today';
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (key === dayKey(y.toISOString())) return 'Yesterday';
  return d.getFullYear() === now.getFullYear() ? dayFmt.format(d) : dayYearFmt.format(d);
}

/** Milliseconds between two ISO times (b - a). */
export const gapMs = (a: string, b: string): number => parse(b).getTime() - parse(a).getTime();

/** One of 8 avatar colour classes, stable per user name. */
export function colorClass(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return `c${h % 8}`;
}

/** The letter shown in a user's avatar. */
export const initial = (name: string): string => (name.match(/[A-Za-z0-9]/)?.[0] ?? '?').toUpperCase();

/** "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are typing…". */
export function typingLabel(users: string[]): string {
  const [a, b, c] = users;
  if (a === undefined) return '';
  if (b === undefined) return `${a} is typing…`;
  if (c === undefined) return `${a} and ${b} are typing…`;
  if (users.length === 3) return `${a}, ${b} and ${c} are typing…`;
  return `${a}, ${b} and ${users.length - 2} others are typing…`;
}

const ROLE_NAMES: Record<Role, string> = { owner: 'an owner', moderator: 'a moderator', member: 'a member' };

/** `name`, or "you" when it is the reader. */
const who = (name: string, me: string): string => (name.toLowerCase() === me.toLowerCase() ? 'you' : name);
const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const withReason = (text: string, reason: string | undefined): string => (reason === undefined || reason === '' ? text : `${text}: ${reason}`);

/** One line for a room event in the timeline: "bob joined", "alice kicked bob: spam". */
export function eventText(e: RoomEvent, me: string): string {
  switch (e.type) {
    case 'room_created':
      return e.visibility === 'direct' ? 'This is the start of your direct conversation' : `${cap(who(e.by, me))} created the room`;
    case 'member_joined':
      return e.by === undefined ? `${cap(who(e.user, me))} joined` : `${cap(who(e.by, me))} added ${who(e.user, me)}`;
    case 'member_left':
      return e.by === undefined ? `${cap(who(e.user, me))} left` : withReason(`${cap(who(e.by, me))} kicked ${who(e.user, me)}`, e.reason);
    case 'banned':
      return withReason(`${cap(who(e.by, me))} banned ${who(e.user, me)}`, e.reason);
    case 'unbanned':
      return `${cap(who(e.by, me))} unbanned ${who(e.user, me)}`;
    case 'role_changed':
      return `${cap(who(e.by, me))} made ${who(e.user, me)} ${ROLE_NAMES[e.role]}`;
    case 'muted':
      return `${cap(who(e.by, me))} muted ${who(e.user, me)}${e.until === undefined ? '' : ` until ${timeLabel(e.until)}`}`;
    case 'unmuted':
      return `${cap(who(e.by, me))} unmuted ${who(e.user, me)}`;
    default: {
      const _exhaustive: never = e;
      return _exhaustive;
    }
  }
}
