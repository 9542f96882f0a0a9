/**
 * @parley/client — the Parley SDK for browsers and Node ≥ 20. No dependencies but
 * @parley/protocol. See README.md.
 */
export { ParleyClient } from './client.js';
export type {
  ClientState,
  ClientOptions,
  ReconnectOptions,
  ClientEventMap,
  ClientEventName,
  StateEvent,
  GapEvent,
  SendResult,
  HistoryOptions,
  LoginResult,
  WebSocketLike,
  WebSocketConstructor,
  MessageEventLike,
  CloseEventLike,
  RoomsEvent,
  CreateRoomOptions,
  MuteOptions,
  ListRoomsOptions,
  RoomListing,
  RoomDirectory,
  MembersOptions,
  RoomMember,
  MemberPage,
} from './types.js';
export { ParleyError, type ParleyErrorCode } from './errors.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
export type { ChatMessage, Limits, ErrorCode, HttpErrorCode, RoomMembership, RoomEvent, RoomEventType, TimelineItem, Role, Visibility } from '@parley/protocol';
export { isRoomEvent } from '@parley/protocol';
