/**
 * `createApp`: a Hono app serving read replicas over HTTP, on web APIs only (Deno, Bun, Node through
 * @hono/node-server, edge platforms). What it answers:
 *
 * - Hrana 2 over HTTP, as @libsql/client speaks it: `POST /v2/pipeline` for the default database and
 *   `POST /<name>/v2/pipeline` for each (a client URL `http://host/<name>/`, trailing slash included);
 *   `GET /v2`, `GET /v3` and the same under `/<name>/` answer 200 for clients that probe.
 * - A JSON API for curl users: `POST /v1/db/<name>/query`, `GET /v1/db/<name>/status`,
 *   `POST /v1/db/<name>/refresh`.
 * - `GET /healthz` and `GET /metrics` (Prometheus text).
 * - With `objects`, the store's objects as a static host would serve them, with caching headers:
 *   `GET`/`HEAD /v1/objects/<key>` (objects.ts), which `HttpStore` reads.
 *
 * Every database answer carries the snapshot it was served from (bookmarks.ts), and waits for
 * `Tessera-Min-Sequence` when asked. docs/SERVER.md describes each endpoint, header, limit and error code.
 *
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import type { InValue } from "@libsql/core/api";
import { fromBase64 } from "../bytes.ts";
import { utf8Length } from "../bytes.ts";
import type { Replica } from "../replica/replica.ts";
import { resultJson } from "../replica/result_json.ts";
import { type Access, checkTokens, Gate } from "./auth.ts";
import { Catchup, readBookmark, type Served, servedNow, snapshotHeaders } from "./bookmarks.ts";
import { errorResponse, ServerError } from "./errors.ts";
import { protoError } from "./hrana_proto.ts";
import { argsError } from "./hrana_stream.ts";
import {
  checkRows,
  checkSqlLength,
  DEFAULT_LIMITS,
  readJsonBody,
  resultTooLarge,
  type ServerLimits,
} from "./limits.ts";
import { Metrics, type StoreCounters, storeCounters } from "./metrics.ts";
import { ObjectEndpoint, OBJECTS_PATH, type ObjectsOptions } from "./objects.ts";
import { runPipeline } from "./pipeline.ts";
import { StreamTable, type StreamTableOptions } from "./streams.ts";

/** One database the app serves. */
export interface ServedDatabase {
  /** The replica to read, opened with `intMode: "bigint"`. */
  replica: Replica;
  /** Anyone may read it, with no token. @default {false} */
  public?: boolean | undefined;
  /** Bearer tokens that open it. */
  tokens?: readonly string[] | undefined;
  /** Counters of its store requests, shown in `/metrics` (see `countingStore`). */
  storeCounters?: StoreCounters | undefined;
}

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** The databases, by name (letters, digits, `_`, `-` and `.`). */
  databases: Record<string, ServedDatabase> | ReadonlyMap<string, ServedDatabase>;
  /** The database `POST /v2/pipeline` reads. @default {the only database, if there is one} */
  defaultDatabase?: string | undefined;
  /** Limits on requests; the rest keep their defaults ({@linkcode DEFAULT_LIMITS}). */
  limits?: Partial<ServerLimits> | undefined;
  /** Hrana stream expiry and count. */
  streams?: StreamTableOptions | undefined;
  /** Longest wait for `Tessera-Min-Sequence`, in ms. @default {5000} */
  maxBookmarkWaitMs?: number | undefined;
  /**
   * When set, `/metrics` needs this bearer token. When not, `/metrics` (which names every database) is open
   * only if every database is public or `publicMetrics` is true, and answers `401 UNAUTHORIZED` otherwise.
   */
  metricsToken?: string | undefined;
  /**
   * `/metrics` answers anyone, even though some database needs a token; ignored when `metricsToken` is set.
   * @default {false}
   */
  publicMetrics?: boolean | undefined;
  /** `shutdown()` closes the replicas too. @default {true} */
  closeReplicas?: boolean | undefined;
  /**
   * Serve a store's objects at `GET`/`HEAD /v1/objects/<key>`, with caching headers for browsers and CDNs,
   * so that `new HttpStore("http://host:port/v1/objects")` reads the store: immutable chunks, packs and
   * manifests, revalidated pointers, and nothing else. Independent of `databases`: a server may serve
   * objects only. Its requests are counted in `/metrics` by object kind.
   * @default {no objects endpoint}
   */
  objects?: ObjectsOptions | undefined;
}

/** The app `createApp` returns: a Hono app that can also shut down. */
export interface TesseraApp extends Hono {
  /**
   * Refuses new requests (`SHUTTING_DOWN`, 503), waits up to `timeoutMs` for those in flight, closes every
   * stream (rolling back its transaction) and, unless told otherwise, the replicas.
   */
  shutdown(options?: { timeoutMs?: number }): Promise<void>;
  /** Requests being answered now. */
  readonly inFlight: number;
}

const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
/** The name the metrics token is checked under: no database can have it. */
const METRICS = "metrics";
// Names a database's URLs cannot carry: the server's own first path segments, and the dot segments that
// URL parsing removes.
const RESERVED = new Set(["healthz", "metrics", "v1", "v2", "v3", ".", ".."]);

/** What a served database may be called, as a phrase for messages ("a name is …"). */
export const DATABASE_NAME_RULE = `1-128 letters, digits, "_", "-" or ".", and none of ${
  [...RESERVED].map((r) => `"${r}"`).join(", ")
}`;

/**
 * Whether `name` can name a served database: it is one segment of the database's URLs (`/<name>/v2/pipeline`,
 * `/v1/db/<name>/query`). See {@linkcode DATABASE_NAME_RULE}.
 *
 * @example
 * ```ts
 * import { isDatabaseName } from "./app.ts";
 * console.log(isDatabaseName("app"), isDatabaseName("bad/name"), isDatabaseName("metrics")); // true false false
 * ```
 */
export function isDatabaseName(name: string): boolean {
  return NAME.test(name) && !RESERVED.has(name);
}

/** Decodes a JSON API argument: integers as integers, `{"base64": "…"}` as a blob. */
function jsonArgument(value: unknown, where: string): InValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    // JSON.parse reads 1e400 as Infinity, which SQLite cannot store.
    if (!Number.isFinite(value)) throw new ServerError(400, "BAD_REQUEST", `${where} is not a finite number`);
    return Number.isSafeInteger(value) ? BigInt(value) : value;
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const { base64, integer } = value as { base64?: unknown; integer?: unknown };
    if (typeof base64 === "string") {
      try {
        return fromBase64(base64);
      } catch {
        throw new ServerError(400, "BAD_REQUEST", `${where}.base64 is not base64`);
      }
    }
    if (typeof integer === "string" && /^-?\d{1,19}$/.test(integer)) {
      const n = BigInt(integer);
      if (n >= -(2n ** 63n) && n < 2n ** 63n) return n;
      throw new ServerError(
        400,
        "BAD_REQUEST",
        `${where}.integer is ${integer}, outside SQLite's 64-bit integers`,
      );
    }
  }
  throw new ServerError(
    400,
    "BAD_REQUEST",
    `${where} is not a JSON value a statement takes (null, number, string, boolean, {"base64": "…"}, {"integer": "…"})`,
  );
}

/**
 * Creates the app serving `options.databases`. Nothing is global: two apps in one process share nothing.
 *
 * @example Serve a replica with Deno
 * ```ts ignore
 * import { openReplica } from "../mod.ts";
 * import { createApp } from "./app.ts";
 *
 * const replica = await openReplica("app", { config: { targets: ["/backups"] } });
 * const app = createApp({ databases: { app: { replica, tokens: ["s3cret"] } } });
 * Deno.serve({ port: 8080 }, app.fetch);
 * ```
 */
export function createApp(options: AppOptions): TesseraApp {
  const databases = new Map(
    options.databases instanceof Map
      ? options.databases
      : Object.entries(options.databases as Record<string, ServedDatabase>),
  );
  for (const name of databases.keys()) {
    if (!isDatabaseName(name)) {
      throw new TypeError(`Cannot serve database "${name}": a name is ${DATABASE_NAME_RULE}`);
    }
  }
  for (const [name, db] of databases) {
    // Hrana and the JSON API tell integers from floats by their JavaScript type.
    if (db.replica.intMode !== "bigint") {
      throw new TypeError(
        `Cannot serve database "${name}": open its replica with intMode "bigint", not "${db.replica.intMode}", ` +
          "so integers reach clients exact and typed",
      );
    }
    checkTokens(`database "${name}"`, db.tokens ?? []);
  }
  if (options.metricsToken !== undefined) checkTokens("metricsToken", [options.metricsToken]);
  const metrics = new Metrics();
  const objects = options.objects === undefined ? undefined : new ObjectEndpoint(options.objects, metrics);
  const defaultDatabase = options.defaultDatabase ??
    (databases.size === 1 ? [...databases.keys()][0] : undefined);
  if (defaultDatabase !== undefined && !databases.has(defaultDatabase)) {
    throw new TypeError(`Cannot serve "${defaultDatabase}" by default: no such database is configured`);
  }
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  // From here on the replicas answer callers the app does not trust: no statement changes what they
  // serve, and no result grows past the limits while SQLite steps through it.
  for (const db of databases.values()) {
    db.replica.restrict({ maxRows: limits.maxRows, maxBytes: limits.maxResultBytes });
  }
  const maxWait = options.maxBookmarkWaitMs ?? 5000;
  const access = new Map<string, Access>(
    [...databases].map(([name, db]) => [name, { public: db.public ?? false, tokens: db.tokens ?? [] }]),
  );
  const gate = Gate.create(access);
  // The metrics token is checked as database tokens are, under a name no database can have.
  const metricsGate = options.metricsToken === undefined
    ? undefined
    : Gate.create(new Map([[METRICS, { public: false, tokens: [options.metricsToken] }]]));
  const streams = new StreamTable(options.streams);
  const counters = new Map([...databases].map(([name, db]) => [name, db.storeCounters ?? storeCounters()]));
  const catchup = new Catchup();
  const stopping = new AbortController();
  const bodyOptions = { timeoutMs: limits.bodyTimeoutMs, signal: stopping.signal };
  let inFlight = 0;
  let shuttingDown = false;
  const idle: (() => void)[] = [];

  const app = new Hono() as unknown as TesseraApp;

  app.use("*", async (c, next) => {
    const started = performance.now();
    const counted = !["/healthz", "/metrics"].includes(c.req.path);
    if (counted) {
      if (shuttingDown) throw new ServerError(503, "SHUTTING_DOWN", "The server is shutting down");
      if (inFlight >= limits.maxConcurrentRequests) {
        throw new ServerError(
          429,
          "TOO_MANY_REQUESTS",
          `The server answers ${limits.maxConcurrentRequests} requests at once, its limit: retry shortly`,
        );
      }
      inFlight++;
    }
    try {
      await next();
    } finally {
      if (counted) {
        inFlight--;
        if (inFlight === 0) idle.splice(0).forEach((wake) => wake());
      }
      metrics.observe(c.req.routePath ?? c.req.path, c.res.status, (performance.now() - started) / 1000);
    }
  });

  app.onError((error, c) => {
    if (error instanceof ServerError) {
      const headers: Record<string, string> = {};
      if (error.status === 429 || error.status === 503) headers["retry-after"] = "1";
      // A page on another origin reading objects must see a 429 or a 503 as one, to retry it.
      if (objects !== undefined && c.req.path.startsWith(OBJECTS_PATH)) {
        Object.assign(headers, objects.corsHeaders, { "cache-control": "no-store" });
      }
      return errorResponse(error, headers);
    }
    const { message } = protoError(error);
    // What a replica's SQL engine threw outside a Hrana result (the JSON API): its code and message.
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string" && c.req.path.startsWith("/v1/")) {
      return new Response(JSON.stringify({ message: `${code}: ${message}`, code }), {
        status: 400,
        headers: { "content-type": "application/json" },
      });
    }
    return errorResponse(new ServerError(500, "INTERNAL_ERROR", `The server failed: ${message}`));
  });

  app.notFound((c) =>
    errorResponse(new ServerError(404, "NOT_FOUND", `No such endpoint: ${c.req.method} ${c.req.path}`))
  );

  /**
   * The replica `name` names, once the request's token opens it (the same answers for unknown names) and
   * it serves the request's minimum sequence; with the snapshot it serves as the request starts.
   */
  async function open(
    c: Context,
    name: string | undefined,
  ): Promise<{ replica: Replica; served: Served; min: number | undefined }> {
    if (name === undefined) {
      throw new ServerError(
        404,
        "NOT_FOUND",
        "This server has no default database: put the database's name in the URL (http://host/<name>/)",
      );
    }
    await (await gate).check(c.req.header("authorization"), name);
    const served = databases.get(name);
    if (served === undefined) {
      throw new ServerError(403, "FORBIDDEN", `The bearer token does not open database "${name}"`);
    }
    const bookmark = readBookmark({ get: (h) => c.req.header(h) }, maxWait);
    const { replica } = served;
    if (bookmark) await catchup.reach(replica, bookmark.min, bookmark.waitMs, { signal: stopping.signal });
    // What the request's first statement would do as it starts: move to the newest snapshot prepared. The
    // headers then name the snapshot the statements read (or, if another arrives meanwhile, an older one).
    if (replica.autoRefresh) await replica.refresh(0);
    return { replica, served: servedNow(replica), min: bookmark?.min };
  }

  function json(body: string, served: Served, status = 200): Response {
    return new Response(body, {
      status,
      headers: { "content-type": "application/json", ...snapshotHeaders(served) },
    });
  }

  async function pipeline(c: Context, name: string | undefined): Promise<Response> {
    const { replica, served, min } = await open(c, name);
    const body = await readJsonBody(c.req.raw, limits.maxBodyBytes, bodyOptions);
    const result = await runPipeline(body, {
      database: name!,
      replica,
      streams,
      limits,
      served,
      minSequence: min,
    });
    return json(result.text, result.served);
  }

  const versionOk = (c: Context) => c.text("Tessera serves Hrana 2 over HTTP: POST v2/pipeline\n");
  app.get("/v2", versionOk);
  app.get("/v3", versionOk);
  app.get("/:db/v2", versionOk);
  app.get("/:db/v3", versionOk);
  app.post("/v2/pipeline", (c) => pipeline(c, defaultDatabase));
  app.post("/:db/v2/pipeline", (c) => pipeline(c, c.req.param("db")));
  for (
    const path of [
      "/v3/pipeline",
      "/:db/v3/pipeline",
      "/v3/cursor",
      "/:db/v3/cursor",
      "/v3-protobuf/pipeline",
    ]
  ) {
    app.post(path, () => {
      throw new ServerError(404, "NOT_FOUND", "This server speaks Hrana 2 over HTTP: POST v2/pipeline");
    });
  }

  app.post("/v1/db/:name/query", async (c) => {
    const { replica, served } = await open(c, c.req.param("name"));
    const body = await readJsonBody(c.req.raw, limits.maxBodyBytes, bodyOptions) as {
      sql?: unknown;
      args?: unknown;
    };
    if (typeof body !== "object" || body === null || typeof body.sql !== "string") {
      throw new ServerError(400, "BAD_REQUEST", 'The body must be {"sql": "…", "args": [...] or {...}}');
    }
    checkSqlLength(body.sql, limits);
    let args: InValue[] | Record<string, InValue> = [];
    if (Array.isArray(body.args)) args = body.args.map((a, i) => jsonArgument(a, `args[${i}]`));
    else if (typeof body.args === "object" && body.args !== null) {
      args = Object.fromEntries(Object.entries(body.args).map(([k, v]) => [k, jsonArgument(v, `args.${k}`)]));
    } else if (body.args !== undefined) {
      throw new ServerError(400, "BAD_REQUEST", "args must be an array or an object");
    }
    const result = await replica.execute({ sql: body.sql, args }).catch(argsError);
    checkRows(result.rows.length, limits);
    const text = resultJson(result, served.sequence);
    if (utf8Length(text) > limits.maxResultBytes) throw resultTooLarge(limits);
    return json(text, served);
  });

  app.get("/v1/db/:name/status", async (c) => {
    const name = c.req.param("name");
    const { replica } = await open(c, name);
    return json(JSON.stringify({ name, ...replica.status() }), servedNow(replica));
  });

  app.post("/v1/db/:name/refresh", async (c) => {
    const name = c.req.param("name");
    const { replica } = await open(c, name);
    const before = replica.sequence;
    await replica.refresh(1);
    return json(JSON.stringify({ name, before, sequence: replica.sequence }), servedNow(replica));
  });

  if (objects !== undefined) {
    for (const path of [OBJECTS_PATH, `${OBJECTS_PATH}/*`]) {
      // Every method, so that writes get the endpoint's 405 (with CORS) rather than the generic 404. Hono
      // answers HEAD with the GET route, dropping the body; the endpoint sees the method.
      app.all(path, (c) => objects.handle(c.req.raw));
    }
  }

  app.get("/healthz", (c) => {
    if (shuttingDown) {
      return errorResponse(new ServerError(503, "SHUTTING_DOWN", "The server is shutting down"));
    }
    const closed = [...databases.values()].filter((d) => d.replica.closed).length;
    return c.json({ ok: closed === 0, databases: databases.size, closed }, closed === 0 ? 200 : 503);
  });

  // /metrics names every database, so it is closed as soon as one database is: a client without a token
  // must not learn which databases exist.
  const metricsOpen = options.metricsToken === undefined &&
    (options.publicMetrics === true || [...databases.values()].every((db) => db.public === true));
  app.get("/metrics", async (c) => {
    if (metricsGate !== undefined) {
      try {
        await (await metricsGate).check(c.req.header("authorization"), METRICS);
      } catch {
        throw new ServerError(
          401,
          "UNAUTHORIZED",
          "/metrics needs its bearer token: send Authorization: Bearer <metricsToken>",
        );
      }
    } else if (!metricsOpen) {
      throw new ServerError(
        401,
        "UNAUTHORIZED",
        "/metrics names the databases, and some need a token: set metricsToken (tessera serve --metrics-token) " +
          "and send it as Authorization: Bearer <token>, or set publicMetrics: true (--public-metrics) to show " +
          "metrics to anyone",
      );
    }
    const rows = new Map(
      [...databases].map(([name, db]) => [name, { replica: db.replica, store: counters.get(name)! }]),
    );
    return c.body(
      metrics.render(rows, { inFlight, streams: streams.size, objects: objects !== undefined }),
      200,
      {
        "content-type": "text/plain; version=0.0.4; charset=utf-8",
      },
    );
  });

  Object.defineProperty(app, "inFlight", { get: () => inFlight });
  app.shutdown = async (shutdownOptions: { timeoutMs?: number } = {}) => {
    shuttingDown = true;
    // Requests waiting for a minimum sequence answer SHUTTING_DOWN now rather than wait it out.
    stopping.abort();
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, shutdownOptions.timeoutMs ?? 10_000);
        idle.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    streams.close();
    if (options.closeReplicas ?? true) { for (const db of databases.values()) db.replica.close(); }
  };
  return app;
}
