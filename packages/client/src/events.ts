/** The listeners of ParleyClient.on(), by event name. */
import type { ClientEventMap, ClientEventName } from './types.js';

type Handler<K extends ClientEventName> = (payload: ClientEventMap[K]) => void;
type Handlers = { readonly [K in ClientEventName]: Set<Handler<K>> };

export class Emitter {
  /** One set per event (the type makes the list complete). */
  private readonly handlers: Handlers = {
    state: new Set(),
    gap: new Set(),
    welcome: new Set(),
    new_message: new Set(),
    presence: new Set(),
    user_joined: new Set(),
    user_left: new Set(),
    typing: new Set(),
    error: new Set(),
    rooms: new Set(),
    room_created: new Set(),
    member_joined: new Set(),
    member_left: new Set(),
    banned: new Set(),
    unbanned: new Set(),
    role_changed: new Set(),
    muted: new Set(),
    unmuted: new Set(),
    invited: new Set(),
    removed: new Set(),
    direct_opened: new Set(),
  };

  on<K extends ClientEventName>(event: K, fn: Handler<K>): void {
    this.handlers[event]?.add(fn);
  }

  off<K extends ClientEventName>(event: K, fn: Handler<K>): void {
    this.handlers[event]?.delete(fn);
  }

  /** Calls every listener of `event`; one that throws does not stop the others, and its error is rethrown asynchronously. */
  emit<K extends ClientEventName>(event: K, payload: ClientEventMap[K]): void {
    const set = this.handlers[event];
    if (set === undefined) return;
    for (const fn of [...set]) {
      try {
        fn(payload);
      } catch (err) {
        // A listener's bug must not break the client; report it like an uncaught error.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
