import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy for fault tests: it forwards bytes both ways and can hold back what the
 * client sends (a frozen link: the server never hears it) or delay some of it (a slow dependency),
 * without any test hook in the code under test.
 */
export interface TcpProxy {
  port: number;
  url(scheme: string): string;
  /** Client→server bytes are held (not forwarded) until thaw(); `drop` discards them instead. */
  freeze(): void;
  thaw(opts?: { drop?: boolean }): void;
  /** Delays each client→server chunk by what `delayMs` returns for it (0: at once). */
  delayClientChunks(delayMs: () => number): void;
  /** Closes every proxied connection at once, as a crashed peer would. */
  resetConnections(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, host = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; held: Buffer[] }>();
  let frozen = false;
  let delay: () => number = () => 0;
  const server: Server = createServer((client) => {
    const upstream = connect({ port: targetPort, host });
    const pair = { client, upstream, held: [] as Buffer[] };
    pairs.add(pair);
    // Delayed chunks keep their order: each waits for the one before it.
    let last = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      if (frozen) {
        pair.held.push(chunk);
        return;
      }
      const ms = delay();
      if (ms <= 0) {
        last = last.then(() => void upstream.write(chunk));
        return;
      }
      last = last.then(() => new Promise<void>((r) => setTimeout(() => r(void upstream.write(chunk)), ms)));
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    url: (scheme) => `${scheme}://${host}:${port}`,
    freeze: () => {
      frozen = true;
    },
    thaw: (opts = {}) => {
      frozen = false;
      for (const p of pairs) {
        if (!opts.drop) for (const chunk of p.held) p.upstream.write(chunk);
        p.held = [];
      }
    },
    delayClientChunks: (fn) => {
      delay = fn;
    },
    resetConnections: () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
    },
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
