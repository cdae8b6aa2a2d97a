/**
 * The smallest edge-isolate server: a replica read over HTTP, chunks kept in memory only, served by the
 * replica server's `fetch` handler (Hrana for @libsql/client, the JSON API, `/healthz`). It imports only the
 * browser entry point (`src/web.ts`), so it needs no filesystem, no process and no native code: what an
 * isolate platform gives.
 *
 * ```sh
 * deno task build:browser   # not needed here; the isolate imports the sources
 * TESSERA_STORE_URL=https://cdn.example.com/backups TESSERA_SOURCE=app TESSERA_TOKEN=s3cret PORT=8000 \
 *   deno run --allow-net --allow-env \
 *     --allow-read=node_modules/@sqlite.org/sqlite-wasm/dist/sqlite3.wasm examples/isolate.ts
 * curl -s localhost:8000/v1/db/db/query -H 'authorization: Bearer s3cret' \
 *   -d '{"sql": "SELECT count(*) AS n FROM sqlite_schema"}'
 * ```
 *
 * The only file it reads is sqlite-wasm's binary (an isolate platform serves it with the code); it writes
 * none. Environment (or the bindings a platform passes `fetch`): `TESSERA_STORE_URL` (the base URL of a
 * store: a static host or CDN serving a store directory, a public bucket, `tessera serve --objects`),
 * `TESSERA_SOURCE` (the database's name), `TESSERA_TOKEN` (the bearer token readers send), `TESSERA_PUBLIC`
 * (`1` serves the database to anyone, with no token), `TESSERA_MEMORY_MB` (the memory cap for chunks,
 * default 32), and for the program `PORT` (default 8000).
 *
 * Exactly one of `TESSERA_TOKEN` and `TESSERA_PUBLIC=1` must be set: a database is never public because a
 * secret binding failed to resolve. An empty token (or one with spaces around it), neither or both is a
 * configuration error: the program refuses to start, and on a platform every request answers 503 with the
 * reason in the platform's log.
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
 * const env = { TESSERA_STORE_URL: "http://127.0.0.1:9/store", TESSERA_SOURCE: "app", TESSERA_PUBLIC: "1" };
 * const response = await isolate.fetch(new Request("http://edge/healthz"), env);
 * console.log(response.status); // 503 while the store cannot be reached
 * ```
 */
const isolate: FetchHandler = createFetchHandler(async (platform) => {
  const config = settings(environment(platform));
  const replica = await openReplica(config.source, {
    store: new HttpStore(config.url),
    // Memory only: no persistent cache layer (an isolate has none), chunks beyond the cap are let go.
    caches: [],
    memoryCacheBytes: config.megabytes * 1024 * 1024,
    intMode: "bigint",
    queryTimeoutMs: 10_000,
    pollIntervalMs: 1000,
  });
  const { token } = config;
  return {
    databases: { db: token === undefined ? { replica, public: true } : { replica, tokens: [token] } },
    defaultDatabase: "db",
  };
});

/**
 * The settings in `env`, checked; throws naming the variable to fix. `token` is undefined only when the
 * database is public (`TESSERA_PUBLIC=1`).
 *
 * @example
 * ```ts
 * import { settings } from "./isolate.ts";
 *
 * const env = { TESSERA_STORE_URL: "https://cdn.example.com/backups", TESSERA_SOURCE: "app", TESSERA_TOKEN: "" };
 * try {
 *   settings(env);
 * } catch (error) {
 *   console.log((error as Error).message); // TESSERA_TOKEN is set but empty: …
 * }
 * ```
 */
export function settings(env: Env): { url: string; source: string; megabytes: number; token?: string } {
  const url = env.TESSERA_STORE_URL;
  const source = env.TESSERA_SOURCE;
  if (!url || !source) throw new TypeError("Set TESSERA_STORE_URL and TESSERA_SOURCE");
  const megabytes = Number(env.TESSERA_MEMORY_MB ?? 32);
  if (!Number.isSafeInteger(megabytes) || megabytes < 1) {
    throw new RangeError(`TESSERA_MEMORY_MB must be a whole number of MiB, not "${env.TESSERA_MEMORY_MB}"`);
  }
  const { TESSERA_TOKEN: token, TESSERA_PUBLIC: open } = env;
  if (open !== undefined && open !== "1") {
    throw new TypeError(`TESSERA_PUBLIC must be 1 (serve the database to anyone) or unset, not "${open}"`);
  }
  if (token !== undefined && token.trim() === "") {
    throw new TypeError(
      "TESSERA_TOKEN is set but empty: give it the bearer token readers send (check the secret it comes " +
        "from), or unset it and set TESSERA_PUBLIC=1 to serve the database to anyone",
    );
  }
  if (token !== undefined && token !== token.trim()) {
    throw new TypeError("TESSERA_TOKEN has spaces or line breaks around it: remove them");
  }
  if (token !== undefined && open === "1") {
    throw new TypeError("TESSERA_TOKEN and TESSERA_PUBLIC=1 are both set: unset one");
  }
  if (token === undefined && open !== "1") {
    throw new TypeError(
      "Set TESSERA_TOKEN to the bearer token readers send, or TESSERA_PUBLIC=1 to serve the database to anyone",
    );
  }
  return token === undefined ? { url, source, megabytes } : { url, source, megabytes, token };
}

export default isolate;

if (import.meta.main) {
  const deno = (globalThis as {
    Deno?: {
      env: { get(name: string): string | undefined };
      exit(code: number): never;
      serve(
        options: { port: number; hostname: string; onListen(addr: { port: number }): void },
        handler: (request: Request) => Promise<Response>,
      ): unknown;
    };
  }).Deno;
  if (!deno) throw new Error("Run this file with Deno, or hand its default export to your platform");
  try {
    settings(environment(undefined));
  } catch (error) {
    // A program refuses to start; a platform's isolate answers 503 and logs the same reason.
    console.error(`isolate: ${(error as Error).message}`);
    deno.exit(1);
  }
  const port = Number(deno.env.get("PORT") ?? 8000);
  deno.serve({
    port,
    hostname: "127.0.0.1",
    onListen: ({ port }) => console.log(JSON.stringify({ listening: port })),
  }, (request) => isolate.fetch(request));
}
