/** The authenticator the config names (today: Parley's own accounts). See identity.ts. */
import { Accounts, type AccountsDeps } from './accounts.js';
import type { Authenticator } from './identity.js';

export type { Authenticator, Identity, Route, RouteRequest, Sessions } from './identity.js';
export { Accounts } from './accounts.js';

export function createAuthenticator(deps: AccountsDeps): Authenticator {
  return new Accounts(deps);
}
