/**
 * Type tests: they pin the SDK's public types and are checked by `tsc` when `npm test` builds
 * (a wrong type fails the build, an unneeded `@ts-expect-error` too). The runtime test at the end
 * only makes this a node:test file; the compile is the test.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ChatMessage, RoomEventPayload, RoomMembership, ServerEvents, ServerEventType, TimelineItem } from '@parley/protocol';
import {
  type ClientEventMap,
  type ClientEventName,
  type ClientState,
  type GapEvent,
  type LoginResult,
  ParleyClient,
  ParleyError,
  type ParleyErrorCode,
  type SendResult,
  type StateEvent,
  type WebSocketConstructor,
} from '../src/index.js';
import type { ConsumedServerEventType } from '../src/types.js';

type Assert<T extends true> = T;
/** True when A and B are the same type (not merely assignable both ways through `any`). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

// Every server event is either passed to on() under its own name with its payload, or consumed by
// the SDK (the documented mapping in types.ts); none is both, none is neither.
type Unmapped = Exclude<ServerEventType, ClientEventName | ConsumedServerEventType>;
type Both = Extract<ConsumedServerEventType, ClientEventName>;
export type _everyServerEventMapped = Assert<Equal<Unmapped, never>>;
export type _noneBoth = Assert<Equal<Both, never>>;
type Passed = Exclude<ServerEventType, ConsumedServerEventType>;
export type _payloadsAsSent = Assert<Equal<Pick<ClientEventMap, Passed>, Pick<ServerEvents, Passed>>>;
// The client's own events.
export type _ownEvents = Assert<Equal<Exclude<ClientEventName, ServerEventType>, 'state' | 'gap' | 'rooms'>>;
export type _state = Assert<Equal<ClientEventMap['state'], StateEvent>>;
export type _gap = Assert<Equal<ClientEventMap['gap'], GapEvent>>;
export type _gapRange = Assert<Equal<GapEvent, { room: string; from: number; to: number; seq: number }>>;
export type _unconfirmed = Assert<Equal<Extract<ParleyErrorCode, 'unconfirmed' | 'shutting_down'>, 'unconfirmed' | 'shutting_down'>>;
export type _newMessage = Assert<Equal<ClientEventMap['new_message'], ChatMessage>>;
export type _states = Assert<Equal<ClientState, 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'>>;

// Request methods resolve with the right types.
export type _send = Assert<Equal<ReturnType<ParleyClient['send']>, Promise<SendResult>>>;
export type _join = Assert<Equal<ReturnType<ParleyClient['join']>, Promise<SendResult>>>;
export type _leave = Assert<Equal<ReturnType<ParleyClient['leave']>, Promise<void>>>;
export type _history = Assert<Equal<ReturnType<ParleyClient['history']>, Promise<TimelineItem[]>>>;
export type _connect = Assert<Equal<ReturnType<ParleyClient['connect']>, Promise<void>>>;
export type _logout = Assert<Equal<ReturnType<ParleyClient['logout']>, Promise<void>>>;
export type _typing = Assert<Equal<ReturnType<ParleyClient['typing']>, void>>;
export type _login = Assert<Equal<ReturnType<typeof ParleyClient.login>, Promise<LoginResult>>>;
export type _register = Assert<Equal<ReturnType<typeof ParleyClient.register>, Promise<void>>>;
export type _sendResult = Assert<Equal<SendResult, { room: string; seq: number }>>;
export type _token = Assert<Equal<ParleyClient['token'], string | undefined>>;
export type _rooms = Assert<Equal<ParleyClient['rooms'], ReadonlyMap<string, Readonly<RoomMembership>>>>;
export type _followed = Assert<Equal<ParleyClient['followed'], ReadonlySet<string>>>;
export type _roomsEvent = Assert<Equal<ClientEventMap['rooms'], { rooms: RoomMembership[] }>>;
export type _createRoom = Assert<Equal<ReturnType<ParleyClient['createRoom']>, Promise<RoomMembership>>>;
export type _openDirect = Assert<Equal<ReturnType<ParleyClient['openDirect']>, Promise<string>>>;
export type _kick = Assert<Equal<ReturnType<ParleyClient['kick']>, Promise<SendResult>>>;
export type _memberJoined = Assert<Equal<ClientEventMap['member_joined'], RoomEventPayload<'member_joined'>>>;
export type _errorCode = Assert<Equal<ParleyError['code'], ParleyErrorCode>>;
export type _unsubscribe = Assert<Equal<ReturnType<ParleyClient['on']>, () => void>>;

/** Never called: only compiled. */
export function usage(client: ParleyClient): void {
  client.on('new_message', (m) => {
    const message: ChatMessage = m;
    const text: string = m.message;
    void [message, text];
  });
  client.on('state', (s) => {
    const state: ClientState = s.state;
    const code: ParleyErrorCode | undefined = s.error?.code;
    void [state, code];
  });
  client.on('gap', (g) => void (g.seq satisfies number));
  client.on('welcome', (w) => void (w.limits.maxMessageChars satisfies number));
  client.on('presence', (p) => void (p.users satisfies string[]));
  client.on('user_joined', (p) => void (p.user satisfies string));
  client.on('typing', (p) => void (p.room satisfies string));
  client.on('error', (e) => void (e.code satisfies ParleyErrorCode));

  // @ts-expect-error: no such event
  client.on('no_such_event', () => undefined);
  // @ts-expect-error: replies to the SDK's own requests are not events of on()
  client.on('ack', () => undefined);
  // @ts-expect-error: nor is the end of a replay (it surfaces as 'gap')
  client.on('resumed', () => undefined);
  // @ts-expect-error: a new_message is a ChatMessage, not a presence
  client.on('new_message', (m: ServerEvents['presence']) => void m);
  // @ts-expect-error: the payload has no `users`
  client.on('new_message', (m) => void m.users);
  // @ts-expect-error: send takes a room and a text
  void client.send('general');
  // @ts-expect-error: history options are {before?, limit?}
  void client.history('general', { after: 3 });

  const off: () => void = client.on('gap', () => undefined);
  off();
}

test('the SDK exports what its types promise', () => {
  assert.equal(typeof ParleyClient, 'function');
  assert.equal(typeof ParleyClient.login, 'function');
  assert.equal(typeof ParleyClient.prototype.logout, 'function');
  const WS: WebSocketConstructor = class {
    readyState = 0;
    onopen = null;
    onmessage = null;
    onclose = null;
    onerror = null;
    send(): void {}
    close(): void {}
  };
  const client = new ParleyClient({ url: 'http://127.0.0.1:1', WebSocket: WS, fetch: () => Promise.reject(new Error('offline')) });
  assert.equal(client.state, 'idle');
  assert.deepEqual([...client.followed], ['general']);
  assert.equal(client.rooms.size, 0, 'no memberships before a welcome');
  assert.ok(new ParleyError('closed') instanceof Error);
});
