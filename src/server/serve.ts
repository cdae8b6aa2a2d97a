/**
 * Listening on a port with the runtime's own server: `Deno.serve` under Deno, `Bun.serve` under Bun, and
 * @hono/node-server under Node. Closing is graceful: the app refuses new requests, answers those in flight
 * (up to a bound), closes its streams and replicas, and the listener stops.
 *
 * @module
 */

import { serve as serveNode } from "@hono/node-server";
import type { TesseraApp } from "./app.ts";

/** Options of {@linkcode listen}. */
export interface ListenOptions {
  /** @default {"127.0.0.1"} */
  hostname?: string;
  /** 0 picks a free port. @default {8080} */
  port?: number;
}

/** A listening server. */
export interface Listening {
  readonly hostname: string;
  readonly port: number;
  /** `http://hostname:port`. */
  readonly url: string;
  readonly runtime: "deno" | "bun" | "node";
  /** Shuts the app down (waiting up to `timeoutMs` for requests in flight), then stops listening. */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

interface DenoServer {
  addr: { port: number; hostname: string };
  shutdown(): Promise<void>;
}
interface BunServer {
  port: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}

/** Serves `app` on a port of this machine. */
export async function listen(app: TesseraApp, options: ListenOptions = {}): Promise<Listening> {
  const hostname = options.hostname ?? "127.0.0.1";
  const wanted = options.port ?? 8080;
  const g = globalThis as {
    Deno?: { serve: (o: unknown, h: unknown) => DenoServer };
    Bun?: { serve: (o: unknown) => BunServer };
  };
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  let closed: Promise<void> | undefined;
  const finish =
    (stop: () => Promise<void>, force?: () => void) => (closeOptions: { timeoutMs?: number } = {}) => {
      closed ??= (async () => {
        const deadline = Date.now() + (closeOptions.timeoutMs ?? 10_000);
        await app.shutdown(closeOptions);
        // A connection that never finishes its request would hold the listener open: it gets what is left
        // of the bound (at least a moment to take its answer), then is dropped where the runtime can.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), Math.max(100, deadline - Date.now()));
        });
        const stopped = stop().then(() => false);
        if (await Promise.race([stopped, late])) force?.();
        clearTimeout(timer);
      })();
      return closed;
    };
  if (g.Deno) {
    // Deno.serve listens before it returns.
    const server = g.Deno.serve({ hostname, port: wanted, onListen: () => {} }, app.fetch);
    const port = server.addr.port;
    return {
      hostname,
      port,
      url: `http://${host}:${port}`,
      runtime: "deno",
      close: finish(() => server.shutdown()),
    };
  }
  if (g.Bun) {
    const server = g.Bun.serve({ hostname, port: wanted, fetch: app.fetch, idleTimeout: 120 });
    const port = server.port;
    return {
      hostname,
      port,
      url: `http://${host}:${port}`,
      runtime: "bun",
      close: finish(async () => {
        await server.stop(false);
      }, () => void server.stop(true)),
    };
  }
  const { server, port } = await new Promise<{ server: ReturnType<typeof serveNode>; port: number }>(
    (resolve, reject) => {
      const server = serveNode(
        { fetch: app.fetch, hostname, port: wanted },
        (info) => resolve({ server, port: info.port }),
      );
      server.once("error", reject);
    },
  );
  return {
    hostname,
    port,
    url: `http://${host}:${port}`,
    runtime: "node",
    close: finish(
      () => new Promise<void>((resolve) => server.close(() => resolve())),
      () => (server as { closeAllConnections?: () => void }).closeAllConnections?.(),
    ),
  };
}
