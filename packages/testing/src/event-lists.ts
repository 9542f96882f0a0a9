/**
 * Every event type of the protocol, as lists the tests can walk. Typed with `satisfies
 * Record<…EventType, true>`: an event added to (or removed from) @parley/protocol fails the
 * compile here until it is listed (and then documented: protocol-docs.test.ts).
 */
import { type ClientEventType, SERVER_EVENT_TYPES, type ServerEventType } from '@parley/protocol';

export const CLIENT_EVENTS = {
  send_message: true,
  change_room: true,
  join: true,
  leave: true,
  history: true,
  resume: true,
  typing: true,
  create_room: true,
  invite: true,
  kick: true,
  ban: true,
  unban: true,
  mute: true,
  unmute: true,
  set_role: true,
  open_direct: true,
} as const satisfies Record<ClientEventType, true>;

/** The protocol's own list (the SDK's runtime check uses it too). */
export const SERVER_EVENTS: Readonly<Record<ServerEventType, true>> = SERVER_EVENT_TYPES;
