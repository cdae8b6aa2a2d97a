/**
 * `tessera serve`'s config: which databases to serve, from which stores, to whom, within which limits, and
 * whether to serve a store's objects (`/v1/objects`) as well. A JSON object (a file, or text), checked whole
 * before anything opens; every problem is a `CONFIG_INVALID` naming the field. docs/SERVER.md documents each
 * field.
 *
 * ```json
 * {
 *   "listen": { "hostname": "127.0.0.1", "port": 8080 },
 *   "store": "file:///var/backups/tessera",
 *   "databases": {
 *     "app": { "tokens": ["env:APP_TOKEN"], "load": "lazy", "queryTimeoutMs": 5000 }
 *   }
 * }
 * ```
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import process from "node:process";
import { openReplica } from "../config/replica.ts";
import { TesseraError } from "../errors.ts";
import type { Replica } from "../replica/replica.ts";
import { openStore } from "../store/open.ts";
import { type AppOptions, DATABASE_NAME_RULE, isDatabaseName, type ServedDatabase } from "./app.ts";
import { choice, invalid, keys, number, object, readSecret, secret, stores } from "./_config_fields.ts";
import type { ObjectsOptions } from "./objects.ts";
import { type ObjectsConfig, openObjects, parseObjectsConfig } from "./objects_config.ts";

export { readSecret };
export type { ObjectsConfig };
import { DEFAULT_LIMITS, type ServerLimits } from "./limits.ts";
import { DEFAULT_MAX_STREAMS } from "./streams.ts";

/** The largest any limit may be: SQLite's longest value is about this, and no answer needs more. */
const MAX_LIMIT = 1 << 30;
import { countingStore, storeCounters } from "./metrics.ts";

/** One database of the config, checked. */
export interface DatabaseConfig {
  /** What the replica reads: a database name in the store (default: the key), or `tessera://…`. */
  source: string;
  /** Store URLs (`file:`, `s3:`, `http(s):`); or none when `config` names the stores. */
  stores: string[];
  /** A Tessera or Verneuil config (object, JSON text or `@file`) for stores and caches. */
  config: unknown;
  engine: "wasm" | "native";
  load: "auto" | "lazy" | "eager";
  memoryCacheBytes: number | undefined;
  pollIntervalMs: number | undefined;
  maxStalenessMs: number | undefined;
  queryTimeoutMs: number;
  public: boolean;
  tokens: string[];
}

/** The whole config, checked. */
export interface ServerConfig {
  hostname: string;
  port: number;
  databases: Map<string, DatabaseConfig>;
  defaultDatabase: string | undefined;
  limits: ServerLimits;
  streamIdleMs: number;
  maxStreams: number;
  maxBookmarkWaitMs: number;
  metricsToken: string | undefined;
  /** `/metrics` answers anyone although some database needs a token (see `AppOptions.publicMetrics`). */
  publicMetrics: boolean;
  shutdownTimeoutMs: number;
  /** The store's objects at `/v1/objects/<key>`, or `undefined` when not served. */
  objects: ObjectsConfig | undefined;
}

const TOP = [
  "listen",
  "store",
  "config",
  "databases",
  "default",
  "limits",
  "streams",
  "maxBookmarkWaitMs",
  "metricsToken",
  "publicMetrics",
  "shutdownTimeoutMs",
  "objects",
] as const;
const DATABASE = [
  "source",
  "store",
  "config",
  "engine",
  "load",
  "memoryCacheBytes",
  "pollIntervalMs",
  "maxStalenessMs",
  "queryTimeoutMs",
  "public",
  "tokens",
] as const;

/**
 * Checks a server config (parsed JSON). `where` names where it came from, for messages.
 *
 * @example
 * ```ts
 * import { parseServerConfig } from "./config.ts";
 * const config = parseServerConfig({ store: "file:///backups", databases: { app: { public: true } } }, "example");
 * console.log(config.port, [...config.databases.keys()]); // 8080 [ "app" ]
 * ```
 */
export function parseServerConfig(
  raw: unknown,
  where: string,
  env: Record<string, string | undefined> = process.env,
): ServerConfig {
  const top = object(raw, "the config", where);
  keys(top, TOP, "", where);
  const listen = object(top.listen ?? {}, "listen", where);
  keys(listen, ["hostname", "port"], "listen.", where);
  if (listen.hostname !== undefined && (typeof listen.hostname !== "string" || listen.hostname === "")) {
    invalid(where, "listen.hostname is not a host name or address");
  }
  const defaultStores = stores(top.store, "store", where);
  const databasesJson = object(top.databases, "databases", where);
  if (Object.keys(databasesJson).length === 0) invalid(where, "databases names no database");
  const databases = new Map<string, DatabaseConfig>();
  for (const [name, value] of Object.entries(databasesJson)) {
    const at = `databases.${name}`;
    if (!isDatabaseName(name)) {
      invalid(
        where,
        `databases has the key ${JSON.stringify(name)}, which is not a database name: a name is ` +
          `${DATABASE_NAME_RULE}; to serve the database stored as ${JSON.stringify(name)}, use a valid ` +
          `key with "source": ${JSON.stringify(name)}`,
      );
    }
    const db = object(value, at, where);
    keys(db, DATABASE, `${at}.`, where);
    const engine = choice(db.engine, `${at}.engine`, where, ["wasm", "native"] as const, "wasm");
    const own = stores(db.store, `${at}.store`, where);
    const config = db.config ?? top.config;
    const chosen = own.length > 0 ? own : defaultStores;
    if (chosen.length === 0 && config === undefined) {
      invalid(where, `${at} has no store: set "store" (here or at the top) or "config"`);
    }
    if (db.source !== undefined && (typeof db.source !== "string" || db.source === "")) {
      invalid(where, `${at}.source is not a database name or tessera:// URL`);
    }
    const tokens = db.tokens === undefined
      ? []
      : Array.isArray(db.tokens)
      ? db.tokens.map((t, i) => secret(t, `${at}.tokens[${i}]`, where, env))
      : invalid(where, `${at}.tokens is not a list of tokens`);
    if (db.public !== undefined && typeof db.public !== "boolean") {
      invalid(where, `${at}.public is not true or false`);
    }
    const isPublic = db.public === true;
    if (!isPublic && tokens.length === 0) {
      invalid(where, `${at} has no tokens: give "tokens", or "public": true to serve it to anyone`);
    }
    const queryTimeoutMs = number(
      db.queryTimeoutMs,
      `${at}.queryTimeoutMs`,
      where,
      0,
      engine === "wasm" ? 10_000 : 0,
    );
    if (engine === "native" && queryTimeoutMs > 0) {
      invalid(
        where,
        `${at}.queryTimeoutMs needs engine "wasm": the native engine cannot interrupt a statement`,
      );
    }
    databases.set(name, {
      source: (db.source as string | undefined) ?? name,
      stores: chosen,
      config,
      engine,
      load: choice(db.load, `${at}.load`, where, ["auto", "lazy", "eager"] as const, "auto"),
      memoryCacheBytes: number(db.memoryCacheBytes, `${at}.memoryCacheBytes`, where, 0),
      pollIntervalMs: number(db.pollIntervalMs, `${at}.pollIntervalMs`, where, 0),
      maxStalenessMs: number(db.maxStalenessMs, `${at}.maxStalenessMs`, where, 0),
      queryTimeoutMs,
      public: isPublic,
      tokens,
    });
  }
  if (top.default !== undefined && (typeof top.default !== "string" || !databases.has(top.default))) {
    invalid(where, `default is ${JSON.stringify(top.default)}, which names no database of "databases"`);
  }
  const limitsJson = object(top.limits ?? {}, "limits", where);
  keys(limitsJson, Object.keys(DEFAULT_LIMITS), "limits.", where);
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as (keyof ServerLimits)[]) {
    limits[key] = number(limitsJson[key], `limits.${key}`, where, 1, DEFAULT_LIMITS[key]);
    if (limits[key] > MAX_LIMIT) {
      invalid(where, `limits.${key} is ${limits[key]}; the most it can be is ${MAX_LIMIT} (1 GiB)`);
    }
  }
  const streams = object(top.streams ?? {}, "streams", where);
  keys(streams, ["idleMs", "max"], "streams.", where);
  if (top.publicMetrics !== undefined && typeof top.publicMetrics !== "boolean") {
    invalid(where, "publicMetrics is not true or false");
  }
  if (top.publicMetrics === true && top.metricsToken !== undefined) {
    invalid(where, "publicMetrics is true and metricsToken is set: give one, not both");
  }
  return {
    hostname: (listen.hostname as string | undefined) ?? "127.0.0.1",
    port: number(listen.port, "listen.port", where, 0, 8080),
    databases,
    defaultDatabase: top.default as string | undefined,
    limits,
    streamIdleMs: number(streams.idleMs, "streams.idleMs", where, 1, 10_000),
    maxStreams: number(streams.max, "streams.max", where, 1, DEFAULT_MAX_STREAMS),
    maxBookmarkWaitMs: number(top.maxBookmarkWaitMs, "maxBookmarkWaitMs", where, 0, 5000),
    metricsToken: top.metricsToken === undefined
      ? undefined
      : secret(top.metricsToken, "metricsToken", where, env),
    publicMetrics: top.publicMetrics === true,
    shutdownTimeoutMs: number(top.shutdownTimeoutMs, "shutdownTimeoutMs", where, 0, 10_000),
    objects: parseObjectsConfig(top.objects, defaultStores, databases, where, env),
  };
}

/** Reads a server config from `-c`: a file path, `@path`, or JSON text (starting with `{`). */
export async function loadServerConfig(
  text: string,
  env: Record<string, string | undefined> = process.env,
): Promise<ServerConfig> {
  const trimmed = text.trim();
  let where: string;
  let source: string;
  if (trimmed.startsWith("{")) {
    where = "-c JSON";
    source = trimmed;
  } else {
    const path = trimmed.startsWith("@") ? trimmed.slice(1) : trimmed;
    where = `file "${path}"`;
    try {
      source = await readFile(path, "utf8");
    } catch (error) {
      throw new TesseraError(
        "CONFIG_INVALID",
        `Cannot read the server config file "${path}": ${(error as Error).message}`,
      );
    }
  }
  let raw: unknown;
  try {
    raw = JSON.parse(source);
  } catch (error) {
    throw new TesseraError(
      "CONFIG_INVALID",
      `Cannot load the server config (${where}): not JSON: ${(error as Error).message}`,
    );
  }
  return parseServerConfig(raw, where, env);
}

/**
 * Opens every database of `config` (all, or none: a failure closes those opened) and returns the options
 * of `createApp`, with store requests counted for `/metrics`.
 */
export async function openServerDatabases(
  config: ServerConfig,
  env: Record<string, string | undefined> = process.env,
): Promise<AppOptions> {
  const opened: Replica[] = [];
  const databases = new Map<string, ServedDatabase>();
  let objects: ObjectsOptions | undefined;
  try {
    for (const [name, db] of config.databases) {
      const counters = storeCounters();
      const replica = await openReplica(db.source, {
        store: db.stores.length > 0
          ? db.stores.map((url) => countingStore(openStore(url, { env }), counters))
          : undefined,
        config: db.stores.length > 0 ? undefined : db.config,
        env,
        engine: db.engine,
        load: db.load,
        memoryCacheBytes: db.memoryCacheBytes,
        pollIntervalMs: db.pollIntervalMs,
        maxStalenessMs: db.maxStalenessMs,
        queryTimeoutMs: db.queryTimeoutMs || undefined,
        intMode: "bigint",
      }).catch((error) => {
        throw new TesseraError(
          (error as TesseraError).code ?? "CONFIG_INVALID",
          `Cannot open database "${name}" (${db.source}): ${(error as Error).message}`,
          { cause: error },
        );
      });
      opened.push(replica);
      databases.set(name, { replica, public: db.public, tokens: db.tokens, storeCounters: counters });
    }
    if (config.objects !== undefined) objects = await openObjects(config.objects, env);
  } catch (error) {
    for (const replica of opened) replica.close();
    throw error;
  }
  return {
    databases,
    defaultDatabase: config.defaultDatabase,
    limits: config.limits,
    streams: { idleMs: config.streamIdleMs, maxStreams: config.maxStreams },
    maxBookmarkWaitMs: config.maxBookmarkWaitMs,
    metricsToken: config.metricsToken,
    publicMetrics: config.publicMetrics,
    objects,
  };
}
