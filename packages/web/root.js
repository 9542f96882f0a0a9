/**
 * Where the built chat page is: the absolute path of this package's dist/public (written by
 * build.mjs). The server imports it (`@parley/web/root`) to serve the page at `/`. Plain
 * JavaScript, not compiled, so that it is there before anything is built.
 */
import { fileURLToPath } from 'node:url';

export const WEB_ROOT = fileURLToPath(new URL('./dist/public', import.meta.url));
