/** Reading a caught value without casting it: `catch (err)` gives `unknown`. */

/** The `code` of an error (Node's `ENOENT`, a database's SQLSTATE, SQLite's `SQLITE_…`), if it has one. */
export const codeOf = (err: unknown): unknown => (typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined);

/** The message of an error, or the value itself as text. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
