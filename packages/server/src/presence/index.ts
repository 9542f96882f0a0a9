import type { Config } from '../config.js';
import { MemoryPresence } from './memory.js';
import type { Presence } from './presence.js';

export type { Presence } from './presence.js';
export { MemoryPresence } from './memory.js';

export function createPresence(_config: Config): Presence {
  return new MemoryPresence();
}
