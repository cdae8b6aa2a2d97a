/**
 * An HTTP endpoint answering read-only SQL from a Tessera read replica, for Deno (`Deno.serve`, Deno
 * Deploy) or Bun (`Bun.serve`). The replica is opened once, at startup, and follows the store: every query
 * runs on the newest snapshot the background poller has fetched.
 *
 * ```sh
 * TESSERA_SOURCE=tessera://db1/srv/app.db TESSERA_STORE=s3://my-bucket/backups PORT=8000 \
 *   deno run -A examples/edge.ts
 * curl 'http://localhost:8000/query?sql=SELECT+count(*)+AS+n+FROM+users'
 * curl 'http://localhost:8000/status'
 * ```
 *
 * Environment: `TESSERA_SOURCE` (a database name, `tessera://host/abs/path`, or a manifest key),
 * `TESSERA_STORE` (`s3://bucket/prefix`, `file:///dir`, a directory, or `https://…`; or a config in
 * `TESSERA_CONFIG`), S3 credentials in `AWS_*`, `PORT` (default 8000, 0 for any free port), `HOST`
 * (default 0.0.0.0), `TESSERA_POLL_MS` (default 1000).
 *
 * @module
 */

import process from "node:process";
import { loadConfig } from "../src/config/load.ts";
import { openTarget } from "../src/config/stores.ts";
import { openReplica } from "../src/config/replica.ts";
import type { Replica } from "../src/replica/replica.ts";

/**
 * A fetch handler over `replica`:
 * - `GET /query?sql=SELECT…[&arg=…]` runs one statement (`arg`s bind its `?`s in order, as text) and answers
 *   `{"columns": [...], "rows": [{column: value}], "sequence": N}`: integers beyond ±(2^53 − 1) as decimal
 *   strings, blobs as base64. An SQL error, a write included, answers 400 with SQLite's message.
 * - `GET /status` answers `replica.status()`.
 *
 * Errors never carry a stack trace. Any SQL can be sent, so put this behind your own authentication.
 *
 * @example Answering a request without a server
 * ```ts
 * import { handler } from "./edge.ts";
 * import { openReplica } from "../src/replica/open.ts";
 * import { LocalStore } from "../src/store/local.ts";
 *
 * const replica = await openReplica("app", { store: new LocalStore("/tmp/backups") }).catch(() => undefined);
 * if (replica) {
 *   const response = await handler(replica)(new Request("http://edge/query?sql=SELECT+1+AS+one"));
 *   console.log(await response.json()); // { columns: ["one"], rows: [{ one: 1 }], sequence: 1 }
 *   replica.close();
 * }
 * ```
 */
export function handler(replica: Replica): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json(
        { error: { code: "METHOD_NOT_ALLOWED", message: `${request.method} is not allowed` } },
        405,
        {
          allow: "GET, HEAD",
        },
      );
    }
    if (url.pathname === "/status") return json(replica.status(), 200);
    if (url.pathname !== "/query") {
      return json({
        error: { code: "NOT_FOUND", message: `No route ${url.pathname}: try /query or /status` },
      }, 404);
    }
    const sql = url.searchParams.get("sql");
    if (!sql) {
      return json({ error: { code: "BAD_REQUEST", message: "Give the SQL to run: /query?sql=…" } }, 400);
    }
    try {
      const result = await replica.execute({ sql, args: url.searchParams.getAll("arg") });
      const rows = result.rows.map((row) =>
        Object.fromEntries(result.columns.map((column, i) => [column, jsonValue(row[i])]))
      );
      return json({ columns: result.columns, rows, sequence: replica.sequence }, 200);
    } catch (error) {
      const { name, code, message } = error as { name?: string; code?: unknown; message?: string };
      const sqlite = name === "LibsqlError" || name === "LibsqlBatchError";
      return json(
        { error: { code: typeof code === "string" ? code : "ERROR", message: message ?? String(error) } },
        sqlite ? 400 : 503,
      );
    }
  };
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function jsonValue(value: unknown): unknown {
  if (typeof value === "bigint") {
    return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : String(value);
  }
  if (value instanceof ArrayBuffer) {
    const bytes = new Uint8Array(value);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return value;
}

function json(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** Opens the replica the environment names: `TESSERA_SOURCE` in the stores of `TESSERA_STORE`/`TESSERA_CONFIG`. */
export async function replicaFromEnv(env: Record<string, string | undefined>): Promise<Replica> {
  const source = env.TESSERA_SOURCE;
  if (!source) {
    throw new TypeError("Set TESSERA_SOURCE to the database to serve, e.g. tessera://db1/srv/app.db");
  }
  const config = await loadConfig({ env, stores: env.TESSERA_STORE ? [env.TESSERA_STORE] : [] });
  const stores = [...config.targets, ...config.readOnly].map((target) => openTarget(target, env));
  if (stores.length === 0) throw new TypeError("Set TESSERA_STORE (s3://bucket/prefix or a directory)");
  return await openReplica(source, {
    store: stores,
    env,
    intMode: "bigint",
    autoRefresh: true,
    pollIntervalMs: Number(env.TESSERA_POLL_MS ?? 1000),
    cacheDirectory: config.cache?.directory,
  });
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
  options: ServeOptions & { fetch(request: Request): Promise<Response> },
) => { hostname: string; port: number };

// Deno.serve and Bun.serve are looked up at run time, so this module type-checks and imports anywhere.
async function main(): Promise<void> {
  const replica = await replicaFromEnv(process.env);
  const options = { port: Number(process.env.PORT ?? 8000), hostname: process.env.HOST ?? "0.0.0.0" };
  const serve = handler(replica);
  const listening = (address: { hostname: string; port: number }) =>
    console.log(`listening on http://${address.hostname}:${address.port}/ (${replica.status().database})`);
  const runtime = globalThis as { Deno?: { serve: DenoServe }; Bun?: { serve: BunServe } };
  if (runtime.Deno) runtime.Deno.serve({ ...options, onListen: listening }, serve);
  else if (runtime.Bun) listening(runtime.Bun.serve({ ...options, fetch: serve }));
  else throw new Error("Run this with Deno (deno run -A examples/edge.ts) or Bun (bun examples/edge.ts)");
}

if (import.meta.main) {
  await main().catch((error) => {
    console.error(`edge: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
