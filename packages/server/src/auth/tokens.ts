/**
 * Random secrets: session tokens (bearer) and one-time WebSocket tickets (tickets/).
 * Both are 256 random bits, base64url. Only a SHA-256 of a token is ever stored.
 */
import { createHash, randomBytes } from 'node:crypto';

const SECRET_BYTES = 32;
/** Random bytes are drawn from the CSPRNG 128 secrets at a time (one call instead of 128). */
let pool = Buffer.alloc(0);
let used = 0;

export const newSecret = (): string => {
  if (used + SECRET_BYTES > pool.length) {
    pool = randomBytes(SECRET_BYTES * 128);
    used = 0;
  }
  const secret = pool.toString('base64url', used, used + SECRET_BYTES);
  pool.fill(0, used, used + SECRET_BYTES); // a handed-out secret does not stay in memory here
  used += SECRET_BYTES;
  return secret;
};
export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
