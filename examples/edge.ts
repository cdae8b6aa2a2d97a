/**
 * The replica server (`src/server/`, docs/SERVER.md) as an edge entry point: one database, named by the
 * environment, served by {@linkcode createFetchHandler}. Every endpoint is the server's: Hrana 2 for
 * @libsql/client, the JSON API, `/metrics`, `/healthz`, bearer tokens and the `Tessera-Sequence` headers.
 * This file only turns the environment into the server's options and, run as a program, listens with
 * `Deno.serve` or `Bun.serve`.
 *
 * ```sh
 * TESSERA_SOURCE=tessera://db1/srv/app.db TESSERA_STORE=s3://my-bucket/backups TESSERA_TOKEN=s3cret \
 *   PORT=8000 deno run -A examples/edge.ts
 * curl -s localhost:8000/v1/db/db/query -H 'authorization: Bearer s3cret' -d '{"sql": "SELECT 1 AS one"}'
 * ```
 *
 * Environment: `TESSERA_SOURCE` (a database name, `tessera://host/abs/path`, or a manifest key),
 * `TESSERA_STORE` (`s3://bucket/prefix`, `file:///dir`, a directory, or `https://…`; or a config in
 * `TESSERA_CONFIG`), S3 credentials in `AWS_*`, `TESSERA_DB_NAME` (the name it is served under, default
 * `db`), `TESSERA_TOKEN` (the bearer token readers send; without it the database is public),
 * `TESSERA_METRICS_TOKEN` (the bearer token `/metrics` needs; without it `/metrics` is open only when the
 * database is public),
 * `TESSERA_POLL_MS` (default 1000), and, for the program, `PORT` (default 8000, 0 for any free port) and
 * `HOST` (default 0.0.0.0).
 *
 * @module
 */

import process from "node:process";
import {
  type AppOptions,
  countingStore,
  createFetchHandler,
  type FetchHandler,
  loadConfig,
  openReplica,
  openTarget,
  type Replica,
  type StoreCounters,
  storeCounters,
} from "../src/mod.ts";

type Env = Record<string, string | undefined>;

/**
 * Opens the replica the environment names: `TESSERA_SOURCE` in the stores of `TESSERA_STORE` and
 * `TESSERA_CONFIG`, following the store every `TESSERA_POLL_MS`. `counters`, when given, counts the store
 * requests for `/metrics`.
 *
 * @example Opening the replica of a database backed up to a directory
 * ```ts
 * import { replicaFromEnv } from "./edge.ts";
 *
 * const env = { TESSERA_SOURCE: "app", TESSERA_STORE: "/tmp/backups" };
 * const replica = await replicaFromEnv(env).catch((error) => console.log(error.code)); // NOT_FOUND
 * replica?.close();
 * ```
 */
export async function replicaFromEnv(env: Env, counters?: StoreCounters): Promise<Replica> {
  const source = env.TESSERA_SOURCE;
  if (!source) {
    throw new TypeError("Set TESSERA_SOURCE to the database to serve, e.g. tessera://db1/srv/app.db");
  }
  const pollIntervalMs = wholeNumber(env, "TESSERA_POLL_MS", 1000);
  const config = await loadConfig({ env, stores: env.TESSERA_STORE ? [env.TESSERA_STORE] : [] });
  const stores = [...config.targets, ...config.readOnly].map((target) => {
    const store = openTarget(target, env);
    return counters ? countingStore(store, counters) : store;
  });
  if (stores.length === 0) throw new TypeError("Set TESSERA_STORE (s3://bucket/prefix or a directory)");
  return await openReplica(source, {
    store: stores,
    env,
    // As `tessera serve` opens its replicas: integers past 2^53 stay exact in every answer.
    intMode: "bigint",
    // As `tessera serve`'s default: a runaway statement is interrupted, and others are answered meanwhile.
    queryTimeoutMs: 10_000,
    autoRefresh: true,
    pollIntervalMs,
    cacheDirectory: config.cache?.directory,
  });
}

/** The server's options for the one database the environment names. */
async function appOptions(env: Env): Promise<AppOptions> {
  const name = env.TESSERA_DB_NAME || "db";
  const token = env.TESSERA_TOKEN || undefined;
  const counters = storeCounters();
  const replica = await replicaFromEnv(env, counters);
  if (token === undefined) {
    console.warn(
      `edge: WARNING: TESSERA_TOKEN is not set, so database "${name}" is PUBLIC: anyone who can reach this ` +
        "server can read all of it. Set TESSERA_TOKEN to require a bearer token.",
    );
  }
  return {
    databases: { [name]: token === undefined ? { replica, public: true } : { replica, tokens: [token] } },
    defaultDatabase: name,
    metricsToken: env.TESSERA_METRICS_TOKEN || undefined,
  };
}

/**
 * The process's environment, overlaid with the string bindings a platform hands `fetch` (a Worker's `env`):
 * those are where such platforms keep their variables and secrets.
 */
function environment(platform: unknown): Env {
  const env: Env = { ...process.env };
  if (typeof platform === "object" && platform !== null) {
    for (const [key, value] of Object.entries(platform)) if (typeof value === "string") env[key] = value;
  }
  return env;
}

/**
 * The server for the database the environment names, opened at the first request: `fetch(request, env?)`
 * for any `fetch(request) => Response` host (`env`, when the platform passes one, overrides `process.env`),
 * and `shutdown()` to answer the requests in flight and close the replica.
 *
 * @example Answering a request without listening
 * ```ts
 * import { handler } from "./edge.ts";
 *
 * const env = { TESSERA_SOURCE: "app", TESSERA_STORE: "/tmp/backups", TESSERA_TOKEN: "s3cret" };
 * const response = await handler.fetch(
 *   new Request("http://edge/v1/db/db/query", {
 *     method: "POST",
 *     headers: { authorization: "Bearer s3cret" },
 *     body: JSON.stringify({ sql: "SELECT 1 AS one" }),
 *   }),
 *   env,
 * );
 * // 200 {"columns":["one"],"rows":[{"one":1}],"sequence":1}, or 503 UNAVAILABLE while /tmp/backups has no "app"
 * console.log(response.status, await response.text());
 * await handler.shutdown();
 * ```
 */
export const handler: FetchHandler = createFetchHandler((platform) => appOptions(environment(platform)));

/** The same handler, for platforms that take a module's default export with a `fetch` method. */
export default handler;

function wholeNumber(env: Env, name: string, fallback: number): number {
  const text = env[name];
  if (!text) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Cannot use ${name}="${text}": give a whole number, 0 or more`);
  }
  return value;
}

interface ServeOptions {
  port: number;
  hostname: string;
}
type DenoServe = (
  options: ServeOptions & { onListen(address: { hostname: string; port: number }): void },
  handler: (request: Request) => Promise<Response>,
) => unknown;
type BunServe = (
  options: ServeOptions & { idleTimeout: number; fetch(request: Request): Promise<Response> },
) => { hostname: string; port: number };

// Deno.serve and Bun.serve are looked up at run time, so this module type-checks and imports anywhere.
async function main(): Promise<"SIGTERM" | "SIGINT"> {
  const env = environment(undefined);
  const name = env.TESSERA_DB_NAME || "db";
  // Opening before listening makes a bad environment stop the program at once, instead of every request
  // answering 503 UNAVAILABLE.
  const warm = await handler.fetch(new Request("http://edge.internal/healthz"));
  if (warm.status !== 200) throw new Error((await warm.json() as { message: string }).message);

  let signals = 0;
  let stop = (_signal: "SIGTERM" | "SIGINT") => {};
  const stopped = new Promise<"SIGTERM" | "SIGINT">((resolve) => (stop = resolve));
  const onSignal = (signal: "SIGTERM" | "SIGINT") => {
    if (++signals > 1) process.exit(signal === "SIGINT" ? 130 : 143);
    stop(signal);
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));

  const options = { port: wholeNumber(env, "PORT", 8000), hostname: env.HOST || "0.0.0.0" };
  // Deno and Bun pass a second argument (connection info, the server) that is no environment.
  const serve = (request: Request) => handler.fetch(request);
  const listening = (address: { hostname: string; port: number }) =>
    console.log(`listening on http://${address.hostname}:${address.port}/ (${name})`);
  const runtime = globalThis as { Deno?: { serve: DenoServe }; Bun?: { serve: BunServe } };
  if (runtime.Deno) runtime.Deno.serve({ ...options, onListen: listening }, serve);
  else if (runtime.Bun) {
    // Bun's default of 10 s would cut a statement running to the server's time limit (10 s) after a wait.
    listening(runtime.Bun.serve({ ...options, idleTimeout: 120, fetch: serve }));
  } else throw new Error("Run this with Deno (deno run -A examples/edge.ts) or Bun (bun examples/edge.ts)");
  return await stopped;
}

// The module's evaluation ends only with the process. Bun serves the default export of an entry module once
// its evaluation ends, and `deno serve` does too: that would be a second server, on a port of their choosing.
if (import.meta.main) {
  try {
    const signal = await main();
    console.log(`${signal}: answering the requests in flight, then exiting`);
    await handler.shutdown();
    process.exit(0);
  } catch (error) {
    console.error(`edge: ${error instanceof Error ? error.message : String(error)}`);
    await handler.shutdown();
    process.exit(1);
  }
}
