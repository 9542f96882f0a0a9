/** Turns whatever a call threw into one sentence for the reader. */
export function errorText(err: unknown): string {
  const e = err as { code?: unknown; status?: unknown } | null;
  if (err instanceof TypeError || (e?.code === 'network' && e.status === undefined)) return 'Cannot reach the server. Check your connection and try again.';
  const message = (err as { message?: unknown } | null)?.message;
  if (typeof message === 'string' && message !== '') return message;
  return 'Something went wrong. Try again.';
}

/** The stable code of a ParleyError (or any error carrying one). */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
