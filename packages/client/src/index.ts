/**
 * @parley/client — the Parley SDK for browsers and Node ≥ 20. No dependencies but
 * @parley/protocol. See README.md.
 */
export {
  ParleyClient,
  type ClientState,
  type ClientOptions,
  type ReconnectOptions,
  type ClientEventMap,
  type ClientEventName,
  type StateEvent,
  type GapEvent,
  type SendResult,
  type HistoryOptions,
  type WebSocketLike,
  type WebSocketConstructor,
  type MessageEventLike,
  type CloseEventLike,
} from './client.js';
export { ParleyError, type ParleyErrorCode } from './errors.js';
export { backoffDelay, type BackoffOptions } from './backoff.js';
export type { ChatMessage, Limits, ErrorCode, HttpErrorCode } from '@parley/protocol';
