/**
 * Configuration: one schema, documented defaults, four sources.
 *
 * Precedence, lowest first: built-in defaults, the JSON file named by `--config` (or
 * `PARLEY_CONFIG`), environment variables `PARLEY_<UPPER_SNAKE>`, command-line flags
 * `--<kebab-case>`. Everything is validated at start; a bad value stops the server with a
 * message naming the key, where it came from and what is expected.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { messageOf } from './failure.js';

const MiB = 1024 * 1024;

const int = (min: number, max: number = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const csv = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : v),
  z.array(z.string().min(1)),
);
const optionalPath = z.preprocess((v) => (v === '' ? undefined : v), z.string().min(1).optional());

/** A driver backed by this node (`memory`) or shared by every node (`redis`, needs redisUrl). */
const sharedDriver = z.enum(['memory', 'redis']);
/** The keys whose default is `redis` when redisUrl is set, else `memory`. */
const SHARED_BY_DEFAULT = ['tickets', 'throttle', 'rateLimiter'] as const;

/** Every configuration key, its type, default and meaning (docs: README "Configuration"). */
const configObject = z
  .object({
    /** Interface to listen on. */
    host: z.string().min(1).default('0.0.0.0'),
    /** TCP port for HTTP and WebSocket. */
    port: int(0, 65535).default(8080),
    /** Directory for the SQLite database and other local state. */
    dataDir: z.string().min(1).default('./data'),
    /** Message/user store driver: `sqlite` (a file in dataDir) or `postgres` (postgresUrl). */
    store: z.enum(['sqlite', 'postgres']).default('sqlite'),
    /** PostgreSQL connection URL, for store=postgres. */
    postgresUrl: optionalPath,
    /** PostgreSQL schema holding Parley's tables (created if missing). */
    postgresSchema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier').default('public'),
    /** The database cancels a statement running longer than this (statement_timeout), in ms; the client gives up 500 ms later (a frozen network never answers). */
    pgStatementTimeoutMs: int(100).default(5000),
    /** How long to wait for a new PostgreSQL connection before the call fails `unavailable`, in ms. */
    pgConnectTimeoutMs: int(100).default(5000),
    /** `full`: an ack means the message survives a power loss (SQLite synchronous=FULL; Postgres as the server commits). `normal`: faster; the last acked messages may be lost on a power loss or a database-server crash (SQLite synchronous=NORMAL; Postgres synchronous_commit=off). */
    durability: z.enum(['full', 'normal']).default('full'),
    /** Cross-node fan-out: `memory` (one node) or `redis` (several nodes; needs redisUrl). */
    broker: z.enum(['memory', 'redis']).default('memory'),
    /** Presence driver: `memory` (one node) or `redis` (shared; needs redisUrl). */
    presence: z.enum(['memory', 'redis']).default('memory'),
    /** Ticket driver: `memory` (one node) or `redis` (a ticket opens a socket on any node). Default: `redis` when redisUrl is set. */
    tickets: sharedDriver.optional(),
    /** Login and sign-up throttle driver: `memory` or `redis` (counted over every node). Default: `redis` when redisUrl is set. */
    throttle: sharedDriver.optional(),
    /** Driver of the per-user message limit and the per-session ticket limit: `memory` or `redis` (over every node). Default: `redis` when redisUrl is set. */
    rateLimiter: sharedDriver.optional(),
    /** Redis URL, for the drivers set to `redis` (tickets, throttle and rateLimiter are by default when it is set). */
    redisUrl: optionalPath,
    /** Prefix of every Redis key and channel (several deployments can share one Redis). */
    redisPrefix: z.string().regex(/^[A-Za-z0-9_.:-]{0,64}$/).default('parley:'),
    /** A node refreshes its presence entries every ttl/3; a dead node's users vanish within this. */
    presenceTtlMs: int(300).default(30_000),
    /** Delete messages older than this many days (0 = keep forever). */
    historyMaxAgeDays: z.coerce.number().min(0).default(0),
    /** Keep at most this many newest messages per room (0 = no limit). */
    historyMaxPerRoom: int(0).default(0),
    /** How often retention runs, in ms. */
    retentionIntervalMs: int(100).default(60_000),
    /** How long a send_message ref is remembered for deduplicating retries, in ms. */
    dedupeWindowMs: int(1000).default(24 * 3600_000),
    /** Most messages one `resume` replays per room: of a bigger gap the newest this many are replayed, the rest reported missing. */
    resumeMaxMessages: int(1).default(100_000),
    /** With several nodes: how often one store query checks every room open here for messages the broker did not bring, ms. */
    catchUpIntervalMs: int(100, 60_000).default(1000),
    /** Lifetime of a one-time WebSocket ticket (otp), in ms. */
    ticketTtlMs: int(100, 10 * 60_000).default(10_000),
    /** Lifetime of a session token from /login, in ms (default 30 days). */
    tokenTtlMs: int(1000).default(30 * 24 * 3600_000),
    /** Extra origins allowed to open a WebSocket (comma list; `*` allows any). Same-origin is always allowed. */
    allowedOrigins: csv.default([]),
    /** `open`: anyone may POST /register; `closed`: accounts are made with `parley user add`. */
    registration: z.enum(['open', 'closed']).default('open'),
    roomCreation: z.enum(['open', 'closed']).default('open'),
    /** Interval between server pings, in ms. */
    pingIntervalMs: int(100).default(25_000),
    /** A client that has not answered a ping within this many ms is dropped. */
    pongTimeoutMs: int(100).default(10_000),
    /** Largest incoming frame, in bytes; bigger closes the connection with 1009. */
    maxMessageBytes: int(256, 16 * MiB).default(64 * 1024),
    /** Longest message text, in characters. */
    maxMessageChars: int(1).default(4000),
    /** Sustained events per second allowed per connection. */
    rateLimitPerSec: int(1).default(20),
    /** Events a connection may send in a burst above the sustained rate. */
    rateLimitBurst: int(1).default(40),
    /** Messages per second one user may send over all connections (and, with Redis, all nodes); 0 = off. */
    userRateLimitPerSec: int(0).default(50),
    /** Bytes that may wait in one connection's outgoing queue before it is closed as a slow consumer (4000). */
    sendQueueMaxBytes: int(1024).default(MiB),
    /** Opt-in write delay, in ms: hold each socket's frames this long to batch more per write (0 = one write per loop turn). */
    writeDelayMs: int(0, 1000).default(0),
    /** Write delay, in ms, applied only while the event loop is busy (80% utilized); 0 = off. Ignored when writeDelayMs is set. */
    busyWriteDelayMs: int(0, 1000).default(5),
    /** Most rooms one connection may follow. */
    maxRoomsPerConnection: int(1).default(100),
    /** Login attempts per user name from one address (per address, over all names: ×4) before each further one must wait a growing delay. */
    loginMaxFailures: int(1).default(5),
    /** How long login attempts are remembered, and the longest delay, in ms. */
    loginWindowMs: int(1000).default(15 * 60_000),
    /** Sign-ups (POST /register) per address before each further one must wait a growing delay. */
    registerMaxPerAddress: int(1).default(30),
    /** How long sign-ups are remembered, and the longest delay, in ms. */
    registerWindowMs: int(1000).default(10 * 60_000),
    /** Tickets (POST /ticket) one session may mint per minute; 0 = no limit. Above maxConnectionsPerUser, so that cap is what a user meets first. */
    ticketRateLimitPerMin: int(0).default(120),
    /** WebSocket connections one user may have open on one node; 0 = no limit. */
    maxConnectionsPerUser: int(0).default(100),
    /** TCP connections (HTTP and WebSocket) one client address may have open on one node; 0 = no limit. */
    maxConnectionsPerAddress: int(0).default(1000),
    /** Take the client address from X-Forwarded-For (only behind a trusted proxy). */
    trustProxy: z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean()).default(false),
    /** PEM certificate file; with tlsKey the server speaks https/wss. */
    tlsCert: optionalPath,
    /** PEM private key file. */
    tlsKey: optionalPath,
    /** Time allowed for a graceful shutdown before the process exits anyway, in ms. */
    shutdownTimeoutMs: int(0).default(10_000),
    /** A second port serving only GET /metrics (Prometheus), on `host`; 0 = none. */
    metricsPort: int(0, 65535).default(0),
    /** Serve GET /metrics on the main port too. Default: true, or false when metricsPort is set (metrics stay off the public port). */
    metricsOnMainPort: z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean()).optional(),
    /** pino log level. */
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export const configSchema = configObject
  .superRefine((c, ctx) => {
    if (c.store === 'postgres' && c.postgresUrl === undefined) {
      ctx.addIssue({ code: 'custom', path: ['postgresUrl'], message: 'store=postgres needs postgresUrl (e.g. postgres://user@127.0.0.1:5432/parley)' });
    }
    for (const k of ['broker', 'presence', ...SHARED_BY_DEFAULT] as const) {
      if (c[k] === 'redis' && c.redisUrl === undefined) {
        ctx.addIssue({ code: 'custom', path: ['redisUrl'], message: `${k}=redis needs redisUrl (e.g. redis://127.0.0.1:6379)` });
      }
    }
    if (c.metricsPort !== 0 && c.metricsPort === c.port) {
      ctx.addIssue({ code: 'custom', path: ['metricsPort'], message: 'metricsPort must differ from port (GET /metrics is on the main port already unless metricsOnMainPort is false)' });
    }
    if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: [c.tlsCert === undefined ? 'tlsCert' : 'tlsKey'], message: 'tlsCert and tlsKey must be set together' });
    }
    for (const o of c.allowedOrigins) {
      if (o !== '*' && !/^https?:\/\/[^/]+$/.test(o)) {
        ctx.addIssue({ code: 'custom', path: ['allowedOrigins'], message: `"${o}" is not an origin like https://chat.example.com (or *)` });
      }
    }
  })
  .transform((c) => {
    const shared = c.redisUrl === undefined ? 'memory' : 'redis';
    return { ...c, tickets: c.tickets ?? shared, throttle: c.throttle ?? shared, rateLimiter: c.rateLimiter ?? shared, metricsOnMainPort: c.metricsOnMainPort ?? c.metricsPort === 0 };
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ConfigKey = keyof Config;

export const CONFIG_KEYS = Object.keys(configObject.shape) as ConfigKey[];

/** Short descriptions for `--help`, taken from one place (kept in sync with README by a test). */
export const CONFIG_HELP: Record<ConfigKey, string> = {
  host: 'interface to listen on',
  port: 'TCP port for HTTP and WebSocket',
  dataDir: 'directory for the SQLite database',
  store: 'store driver: sqlite | postgres',
  postgresUrl: 'PostgreSQL URL (store=postgres)',
  postgresSchema: 'PostgreSQL schema for the tables',
  pgStatementTimeoutMs: 'PostgreSQL statement timeout (client gives up 500 ms later), ms',
  pgConnectTimeoutMs: 'PostgreSQL connect timeout, ms',
  durability: 'full (an ack survives a power loss) | normal (faster; the last acks may be lost)',
  broker: 'cross-node fan-out: memory | redis',
  presence: 'presence driver: memory | redis',
  tickets: 'ticket driver: memory | redis (default redis when redisUrl is set)',
  throttle: 'login/sign-up throttle driver: memory | redis (default redis when redisUrl is set)',
  rateLimiter: 'per-user and per-session rate limit driver: memory | redis (default redis when redisUrl is set)',
  redisUrl: 'Redis URL (for redis drivers; tickets, throttle, rateLimiter default to redis when set)',
  redisPrefix: 'prefix of Redis keys and channels',
  presenceTtlMs: 'presence entry TTL; a dead node\'s users vanish within it, ms',
  historyMaxAgeDays: 'delete messages older than this, days (0 = keep)',
  historyMaxPerRoom: 'keep at most this many messages per room (0 = all)',
  retentionIntervalMs: 'how often retention runs, ms',
  dedupeWindowMs: 'how long a send_message ref deduplicates retries, ms',
  resumeMaxMessages: 'most messages one resume replays per room (older ones of a bigger gap are reported missing)',
  catchUpIntervalMs: 'with several nodes: how often the store is checked for messages the broker did not bring, ms',
  ticketTtlMs: 'lifetime of a one-time ticket, ms',
  tokenTtlMs: 'lifetime of a session token, ms',
  allowedOrigins: 'comma list of extra allowed origins (* = any)',
  registration: 'open | closed',
  roomCreation: 'open | closed (users cannot make rooms; direct rooms still open)',
  pingIntervalMs: 'interval between pings, ms',
  pongTimeoutMs: 'drop a client that does not pong within, ms',
  maxMessageBytes: 'largest incoming frame, bytes (else close 1009)',
  maxMessageChars: 'longest message text, characters',
  rateLimitPerSec: 'sustained events per second per connection',
  rateLimitBurst: 'burst above the sustained rate',
  userRateLimitPerSec: 'messages/s per user over all connections and nodes (0 = off)',
  sendQueueMaxBytes: 'outgoing queue bound per connection, bytes (else close 4000)',
  writeDelayMs: 'opt-in write batching delay, ms (0 = per loop turn)',
  busyWriteDelayMs: 'write batching delay while the event loop is busy, ms (0 = off)',
  maxRoomsPerConnection: 'rooms one connection may follow',
  loginMaxFailures: 'login attempts per name and address before delays (per address: 4x)',
  loginWindowMs: 'how long login attempts count, and the longest delay, ms',
  registerMaxPerAddress: 'sign-ups per address before delays',
  registerWindowMs: 'how long sign-ups count, and the longest delay, ms',
  ticketRateLimitPerMin: 'tickets per session per minute (0 = off)',
  maxConnectionsPerUser: 'open WebSockets per user on one node (0 = off)',
  maxConnectionsPerAddress: 'open TCP connections per client address on one node (0 = off)',
  trustProxy: 'take the client address from X-Forwarded-For',
  tlsCert: 'PEM certificate file (enables https/wss)',
  tlsKey: 'PEM private key file',
  shutdownTimeoutMs: 'graceful shutdown deadline, ms',
  metricsPort: 'second port serving only GET /metrics (0 = none)',
  metricsOnMainPort: 'serve GET /metrics on the main port (default true, false when metricsPort is set)',
  logLevel: 'fatal | error | warn | info | debug | trace | silent',
};

export const envName = (key: string): string => 'PARLEY_' + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
export const flagName = (key: string): string => key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Path of a JSON config file. */
  file?: string | undefined;
  /** Environment (defaults to none; the CLI passes process.env). */
  env?: NodeJS.ProcessEnv;
  /** Values from flags or code, keyed by config key. */
  overrides?: Partial<Record<ConfigKey, unknown>>;
}

type Source = 'default' | 'file' | 'env' | 'flag';

/**
 * PARLEY_* variables that are not configuration keys but are read: the config file's path, the
 * password of `parley user add`, and PARLEY_TEST_* (Parley's own test suite: its services' URLs).
 */
const OTHER_VARIABLES = new Set(['PARLEY_CONFIG', 'PARLEY_USER_PASSWORD']);
const isOtherVariable = (name: string): boolean => OTHER_VARIABLES.has(name) || name.startsWith('PARLEY_TEST_');

/** Edit distance, for "did you mean" (names are short). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length] as number;
}

/** A line per PARLEY_* variable that no key reads (a typo must not pass silently), with the nearest name. */
function unknownVariables(env: NodeJS.ProcessEnv): string[] {
  const known = CONFIG_KEYS.map(envName);
  const lines: string[] = [];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('PARLEY_') || known.includes(name) || isOtherVariable(name)) continue;
    const nearest = [...known, ...OTHER_VARIABLES].map((k) => [k, distance(name, k)] as const).sort((x, y) => x[1] - y[1])[0];
    const hint = nearest !== undefined && nearest[1] <= 3 ? `; did you mean ${nearest[0]}?` : '';
    lines.push(`unknown environment variable ${name}${hint} (every PARLEY_* variable must name a key; see --help)`);
  }
  return lines;
}

/** Merges the sources (defaults < file < env < overrides) and validates the result. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  const set = (key: string, value: unknown, source: Source, label: string) => {
    merged[key] = value;
    origin[key] = source === 'file' ? `${label} in ${sources.file}` : source === 'env' ? label : source === 'flag' ? label : 'default';
  };

  if (sources.file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(sources.file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${sources.file}: ${messageOf(err)}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${sources.file} must hold a JSON object`);
    }
    for (const [k, v] of Object.entries(parsed)) set(k, v, 'file', `"${k}"`);
  }
  const env = sources.env ?? {};
  const unknownEnv = unknownVariables(env);
  if (unknownEnv.length > 0) throw new ConfigError(`invalid configuration:\n  ${unknownEnv.join('\n  ')}`);
  for (const key of CONFIG_KEYS) {
    const v = env[envName(key)];
    if (v !== undefined) set(key, v, 'env', envName(key));
  }
  for (const [k, v] of Object.entries(sources.overrides ?? {})) {
    if (v !== undefined) set(k, v, 'flag', `--${flagName(k)}`);
  }

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      if (issue.code === 'unrecognized_keys') {
        return `unknown key(s) ${issue.keys.map((k) => `"${k}"${origin[k] !== undefined ? ` (${origin[k]})` : ''}`).join(', ')}; known keys: ${CONFIG_KEYS.join(', ')}`;
      }
      const from = origin[key] ?? 'default';
      const got = merged[key] === undefined ? '' : `, got ${JSON.stringify(merged[key])}`;
      return `${key} (${from}): ${issue.message}${got}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}
