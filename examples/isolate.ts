/**
 * The smallest edge-isolate server: a replica read over HTTP, chunks kept in memory only, served by the
 * replica server's `fetch` handler (Hrana for @libsql/client, the JSON API, `/healthz`). It imports only the
 * browser entry point (`src/web.ts`), so it needs no filesystem, no process and no native code: what an
 * isolate platform gives.
 *
 * ```sh
 * deno task build:browser   # not needed here; the isolate imports the sources
 * TESSERA_STORE_URL=https://cdn.example.com/backups TESSERA_SOURCE=app PORT=8000 \
 *   deno run --allow-net --allow-env \
 *     --allow-read=node_modules/@sqlite.org/sqlite-wasm/dist/sqlite3.wasm examples/isolate.ts
 * curl -s localhost:8000/v1/db/db/query -d '{"sql": "SELECT count(*) AS n FROM sqlite_schema"}'
 * ```
 *
 * The only file it reads is sqlite-wasm's binary (an isolate platform serves it with the code); it writes
 * none. Environment (or the bindings a platform passes `fetch`): `TESSERA_STORE_URL` (the base URL of a
 * store: a static host or CDN serving a store directory, a public bucket, `tessera serve --objects`),
 * `TESSERA_SOURCE` (the database's name), `TESSERA_TOKEN` (the bearer token readers send; without it the
 * database is public), `TESSERA_MEMORY_MB` (the memory cap for chunks, default 32), and for the program
 * `PORT` (default 8000).
 *
 * @module
 */

import { createFetchHandler, type FetchHandler, HttpStore, openReplica } from "../src/web.ts";

type Env = Record<string, string | undefined>;

/** The platform's variables: the bindings it passes `fetch`, else Deno's environment when readable. */
function environment(platform: unknown): Env {
  const env: Env = {};
  const deno = (globalThis as { Deno?: { env: { toObject(): Env } } }).Deno;
  try {
    Object.assign(env, deno?.env.toObject());
  } catch {
    // No permission to read the environment: the platform's bindings are all there is.
  }
  if (typeof platform === "object" && platform !== null) {
    for (const [key, value] of Object.entries(platform)) if (typeof value === "string") env[key] = value;
  }
  return env;
}

/**
 * The handler: opens the replica at the first request, then answers every request from it.
 *
 * @example Answering a request without listening
 * ```ts
 * import isolate from "./isolate.ts";
 *
 * const env = { TESSERA_STORE_URL: "http://127.0.0.1:9/store", TESSERA_SOURCE: "app" };
 * const response = await isolate.fetch(new Request("http://edge/healthz"), env);
 * console.log(response.status); // 503 while the store cannot be reached
 * ```
 */
const isolate: FetchHandler = createFetchHandler(async (platform) => {
  const env = environment(platform);
  const url = env.TESSERA_STORE_URL;
  const source = env.TESSERA_SOURCE;
  if (!url || !source) throw new TypeError("Set TESSERA_STORE_URL and TESSERA_SOURCE");
  const megabytes = Number(env.TESSERA_MEMORY_MB ?? 32);
  if (!Number.isSafeInteger(megabytes) || megabytes < 1) {
    throw new RangeError(`TESSERA_MEMORY_MB must be a whole number of MiB, not "${env.TESSERA_MEMORY_MB}"`);
  }
  const replica = await openReplica(source, {
    store: new HttpStore(url),
    // Memory only: no persistent cache layer (an isolate has none), chunks beyond the cap are let go.
    caches: [],
    memoryCacheBytes: megabytes * 1024 * 1024,
    intMode: "bigint",
    queryTimeoutMs: 10_000,
    pollIntervalMs: 1000,
  });
  const token = env.TESSERA_TOKEN || undefined;
  return {
    databases: { db: token === undefined ? { replica, public: true } : { replica, tokens: [token] } },
    defaultDatabase: "db",
  };
});

export default isolate;

if (import.meta.main) {
  const deno = (globalThis as {
    Deno?: {
      env: { get(name: string): string | undefined };
      serve(
        options: { port: number; hostname: string; onListen(addr: { port: number }): void },
        handler: (request: Request) => Promise<Response>,
      ): unknown;
    };
  }).Deno;
  if (!deno) throw new Error("Run this file with Deno, or hand its default export to your platform");
  const port = Number(deno.env.get("PORT") ?? 8000);
  deno.serve({
    port,
    hostname: "127.0.0.1",
    onListen: ({ port }) => console.log(JSON.stringify({ listening: port })),
  }, (request) => isolate.fetch(request));
}
