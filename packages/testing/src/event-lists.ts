/**
 * Every event type of the protocol, as lists the tests can walk. Typed with `satisfies
 * Record<…EventType, true>`: an event added to (or removed from) @parley/protocol fails the
 * compile here until it is listed (and then documented: protocol-docs.test.ts).
 */
import type { ClientEventType, ServerEventType } from '@parley/protocol';

export const CLIENT_EVENTS = {
  send_message: true,
  change_room: true,
  join: true,
  leave: true,
  history: true,
  resume: true,
  typing: true,
} as const satisfies Record<ClientEventType, true>;

export const SERVER_EVENTS = {
  welcome: true,
  new_message: true,
  room_changed: true,
  joined: true,
  left: true,
  ack: true,
  history: true,
  resumed: true,
  presence: true,
  user_joined: true,
  user_left: true,
  typing: true,
  error: true,
} as const satisfies Record<ServerEventType, true>;
