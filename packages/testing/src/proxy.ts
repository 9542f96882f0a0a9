/**
 * A TCP proxy for fault tests: a real network between a node and its backend (Postgres, Redis)
 * that a test can break.
 *
 *   const proxy = await TcpProxy.start(5432);      // listens on 127.0.0.1:<proxy.port>
 *   proxy.freeze();   // a hung backend: bytes stop flowing both ways, sockets stay open
 *   proxy.cut();      // a dead backend: every connection is reset, new ones are refused
 *   proxy.restore();  // back to normal
 *   await proxy.close();
 */
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

type Mode = 'open' | 'frozen' | 'cut';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class TcpProxy {
  private mode: Mode = 'open';
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on 127.0.0.1 (a free port unless `port` is given) and forwards to `targetPort` on `targetHost`. */
  static async start(targetPort: number, targetHost = '127.0.0.1', port = 0): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy?.accept(client, targetPort, targetHost));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  /** The proxy's URL for a backend URL: same credentials and path, host and port replaced. */
  url(backendUrl: string): string {
    const u = new URL(backendUrl);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /** Connections currently forwarded. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Bytes stop flowing both ways; open sockets stay open and new ones are accepted but get nothing (a hung backend). */
  freeze(): void {
    if (this.mode === 'cut') return;
    this.mode = 'frozen';
    for (const p of this.pairs) hold(p);
  }

  /** Every connection is reset and new ones are refused at once (a dead backend). */
  cut(): void {
    this.mode = 'cut';
    for (const p of this.pairs) {
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Bytes flow again; frozen connections carry on where they stopped. */
  restore(): void {
    if (this.mode === 'open') return;
    this.mode = 'open';
    for (const p of this.pairs) flow(p);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, targetPort: number, targetHost: string): void {
    client.on('error', () => undefined);
    if (this.mode === 'cut') {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ port: targetPort, host: targetHost });
    upstream.on('error', () => undefined);
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    const end = (): void => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    if (this.mode === 'frozen') hold(pair);
    else flow(pair);
  }
}

/** Forwards both ways. */
function flow(p: Pair): void {
  p.client.pipe(p.upstream);
  p.upstream.pipe(p.client);
}

/** Forwards nothing (unpiped: a drain cannot resume it) until `flow`. */
function hold(p: Pair): void {
  p.client.unpipe(p.upstream);
  p.upstream.unpipe(p.client);
  p.client.pause();
  p.upstream.pause();
}
