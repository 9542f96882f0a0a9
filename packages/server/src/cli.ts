#!/usr/bin/env -S node --max-semi-space-size=8
/**
 * The `parley` command.
 *
 * Node gets `--max-semi-space-size=8` (MiB; `npm start` passes the same): V8's young generation
 * otherwise grows to 2 × 16 MiB during a burst of connects and keeps it, about 3 KiB per
 * connection at 10,000 idle ones. Measured in bench/ (README, "Benchmarks"): no cost in CPU per
 * delivery in fan-out or in many small rooms.
 *
 *   parley start [--port 9000 …]        run the server (the default command)
 *   parley gencert [--out dir]          write a self-signed certificate pair for local TLS
 *   parley user add|list|remove         manage accounts offline, in the configured store
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { MIN_PASSWORD_LENGTH, normalizeUserName, type Role, ROLES, roomKey } from '@parley/protocol';
import { hashPassword, normalizePassword } from './auth/password.js';
import { CONFIG_HELP, CONFIG_KEYS, ConfigError, flagName, loadConfig, type Config, type ConfigKey } from './config.js';
import { createLogger, startServer } from './server.js';
import { createStore, StoreError } from './store/index.js';
import { codeOf } from './failure.js';
import { NO_SUCH_ROOM } from './store/membership.js';

const isRole = (r: string): r is Role => ROLES.some((x) => x === r);

type Opts = Record<string, unknown> & { config?: string };

/** Adds `--config` and one `--<kebab-case>` flag per config key. */
function withConfigFlags(cmd: Command): Command {
  cmd.addOption(new Option('-c, --config <file>', 'JSON config file (env: PARLEY_CONFIG)'));
  for (const key of CONFIG_KEYS) {
    const opt = key === 'trustProxy' ? new Option(`--${flagName(key)} [bool]`, CONFIG_HELP[key]) : new Option(`--${flagName(key)} <value>`, CONFIG_HELP[key]);
    cmd.addOption(opt);
  }
  return cmd;
}

function configFrom(opts: Opts): Config {
  const overrides: Partial<Record<ConfigKey, unknown>> = {};
  for (const key of CONFIG_KEYS) if (opts[key] !== undefined) overrides[key] = opts[key] === true ? 'true' : opts[key];
  return loadConfig({ file: opts.config ?? process.env.PARLEY_CONFIG, env: process.env, overrides });
}

function fail(err: unknown): never {
  if (err instanceof ConfigError || err instanceof StoreError) console.error(`parley: ${err.message}`);
  else console.error('parley:', err);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

/**
 * Reads a line from the terminal without echoing it (the terminal in raw mode): backspace
 * erases, Ctrl-C or Ctrl-D on an empty line cancels.
 */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) {
          done();
          reject(new ConfigError('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** The new account's password: --password, PARLEY_USER_PASSWORD, a prompt (twice) on a terminal, or stdin. */
async function newPassword(given: string | undefined): Promise<string> {
  const password = given ?? process.env.PARLEY_USER_PASSWORD;
  if (password !== undefined) return password;
  if (process.stdin.isTTY !== true) return readStdin();
  const first = await promptHidden('Password: ');
  if (first === '') return first;
  if ((await promptHidden('Repeat password: ')) !== first) throw new ConfigError('the passwords do not match');
  return first;
}

/** One line for a server that cannot start for a known reason (a port in use, a store it cannot reach). */
function startFailure(err: unknown, config: Config): string | undefined {
  const code = codeOf(err);
  const where = `${config.host}:${config.port}`;
  if (code === 'EADDRINUSE') return `cannot listen on ${where}: port ${config.port} is in use`;
  if (code === 'EACCES') return `cannot listen on ${where}: permission denied for port ${config.port}`;
  if (code === 'EADDRNOTAVAIL') return `cannot listen on ${where}: ${config.host} is not an address of this machine`;
  if (err instanceof StoreError) return `cannot open the ${config.store} store: ${err.message}`;
  return undefined;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const program = new Command('parley').description('Parley: self-hosted real-time chat server').version(VERSION, '-V, --version', 'print the version').showHelpAfterError();

withConfigFlags(program.command('start', { isDefault: true }).description('run the server'))
  .action(async (opts: Opts) => {
    let config: Config;
    try {
      config = configFrom(opts);
    } catch (err) {
      fail(err);
    }
    const log = createLogger(config);
    let server: Awaited<ReturnType<typeof startServer>>;
    try {
      server = await startServer(config, { logger: log });
    } catch (err) {
      const line = startFailure(err, config);
      if (line !== undefined) console.error(`parley: ${line}`);
      else log.fatal({ err }, 'cannot start');
      process.exit(1);
    }
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      const force = setTimeout(() => {
        log.error('shutdown deadline passed; exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs + 5_000);
      force.unref();
      server.close().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program
  .command('gencert')
  .description('write a self-signed certificate and key (for local TLS only)')
  .option('-o, --out <dir>', 'output directory', '.')
  .option('--host <names>', 'comma list of DNS names / IPs the certificate is for', 'localhost,127.0.0.1,::1')
  .option('--days <n>', 'validity in days', '365')
  .action(async (opts: { out: string; host: string; days: string }) => {
    const { generate } = await import('selfsigned');
    const names = opts.host.split(',').map((s) => s.trim()).filter(Boolean);
    const days = Number(opts.days);
    if (!Number.isInteger(days) || days < 1) fail(new ConfigError(`--days must be a positive integer, got ${opts.days}`));
    const isIp = (s: string) => /^[\d.]+$/.test(s) || s.includes(':');
    const notAfter = new Date(Date.now() + days * 86_400_000);
    const pems = await generate([{ name: 'commonName', value: names[0] ?? 'localhost' }], {
      keySize: 2048,
      algorithm: 'sha256',
      notAfterDate: notAfter,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: names.map((n) => (isIp(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
      ],
    });
    mkdirSync(opts.out, { recursive: true });
    const cert = join(opts.out, 'server.crt');
    const key = join(opts.out, 'server.key');
    writeFileSync(cert, pems.cert);
    // The mode applies only when the file is created: an old key file would keep its own (and be
    // readable by others while the new key is written), so it is removed first.
    rmSync(key, { force: true });
    writeFileSync(key, pems.private, { mode: 0o600 });
    console.log(`wrote ${cert} and ${key} for ${names.join(', ')}, valid ${days} days`);
    console.log(`start with: parley start --tls-cert ${cert} --tls-key ${key}`);
  });

const user = program.command('user').description('manage accounts in the configured store (offline)');

withConfigFlags(user.command('add <name>').description('create an account (password from --password, PARLEY_USER_PASSWORD, a prompt on a terminal, or stdin)'))
  .option('--password <password>', 'the password (prefer stdin or PARLEY_USER_PASSWORD)')
  .action(async (typed: string, opts: Opts & { password?: string }) => {
    try {
      const name = normalizeUserName(typed);
      if (name === undefined) throw new ConfigError('user names are 1–32 characters of A–Z a–z 0–9 _ . -');
      const raw = await newPassword(opts.password);
      if (raw === '') throw new ConfigError('a password is required (--password, PARLEY_USER_PASSWORD, stdin, or type it at the prompt)');
      const password = normalizePassword(raw);
      if (password === undefined) throw new ConfigError('the password is not valid Unicode text');
      if (password.length < MIN_PASSWORD_LENGTH) throw new ConfigError(`passwords are at least ${MIN_PASSWORD_LENGTH} characters`);
      const store = createStore(configFrom(opts));
      await store.init();
      try {
        await store.createUser(name, await hashPassword(password));
      } catch (err) {
        if (err instanceof StoreError && err.code === 'conflict') throw new ConfigError(`user ${name} exists already (or was removed: a removed name stays reserved)`);
        throw err;
      } finally {
        await store.close();
      }
      console.log(`added user ${name}`);
    } catch (err) {
      fail(err);
    }
  });

withConfigFlags(user.command('list').description('list accounts'))
  .option('--json', 'print JSON')
  .action(async (opts: Opts & { json?: boolean }) => {
    try {
      const store = createStore(configFrom(opts));
      await store.init();
      const users = await store.listUsers();
      await store.close();
      if (opts.json === true) console.log(JSON.stringify(users.map((u) => ({ name: u.name, createdAt: new Date(u.createdAt).toISOString() }))));
      else for (const u of users) console.log(`${u.name}\t${new Date(u.createdAt).toISOString()}`);
    } catch (err) {
      fail(err);
    }
  });

withConfigFlags(
  user.command('remove <name>').description('remove an account: its sessions end, running servers close its sockets within a second, its name stays reserved'),
)
  .action(async (typed: string, opts: Opts) => {
    try {
      const name = normalizeUserName(typed);
      if (name === undefined) throw new ConfigError(`no user ${typed}`);
      const store = createStore(configFrom(opts));
      await store.init();
      const registered = (await store.getUser(name))?.name ?? name;
      const removed = await store.deleteUser(name);
      await store.close();
      if (!removed) throw new ConfigError(`no user ${name}`);
      console.log(`removed user ${registered} (its name stays reserved)`);
    } catch (err) {
      fail(err);
    }
  });

const room = program.command('room').description('manage rooms in the configured store (offline, or beside running servers)');

withConfigFlags(room.command('role <room> <user> <role>').description('give a user a role in a room (owner | moderator | member), made a member if need be: e.g. an owner for a room migrated without one'))
  .action(async (typedRoom: string, typedUser: string, role: string, opts: Opts) => {
    try {
      const name = roomKey(typedRoom);
      if (name === undefined) throw new ConfigError(`no room ${typedRoom}`);
      if (!isRole(role)) throw new ConfigError(`a role is one of ${ROLES.join(', ')}`);
      const store = createStore(configFrom(opts));
      await store.init();
      try {
        const target = await store.getUser(typedUser);
        if (target === undefined) throw new ConfigError(`no user ${typedUser}`);
        const out = await store.applyMembership({ type: 'grant', room: name, user: target.name, role });
        if (!out.ok) throw new ConfigError(out.message === NO_SUCH_ROOM ? `no room ${name}` : out.message);
        const article = role === 'owner' ? 'an' : 'a';
        console.log(`${target.name} is ${article} ${role} of ${name}${out.events.length === 0 ? ' already' : ''}`);
      } finally {
        await store.close();
      }
    } catch (err) {
      fail(err);
    }
  });

program
  .command('version')
  .description('print the version')
  .action(() => {
    console.log(VERSION);
  });

await program.parseAsync(process.argv);
