/**
 * The `objects` field of `tessera serve`'s config: which store's objects `/v1/objects` serves, for which
 * databases, to whom (docs/SERVER.md, "Objects endpoint and static hosting").
 *
 * @module
 */

import { hostname } from "node:os";
import { resolve } from "node:path";
import { TesseraError } from "../errors.ts";
import { isDatabaseName as isStoredName, parseSource } from "../manifest/naming.ts";
import { openStore } from "../store/open.ts";
import { invalid, type Json, keys, number, secret } from "./_config_fields.ts";
import { DEFAULT_MAX_BUFFERED_BYTES, isCorsOrigin, type ObjectsOptions } from "./objects.ts";

/** What the objects config needs of each database served. */
interface DatabaseConfig {
  stores: string[];
  source: string;
  public: boolean;
}

/** The objects endpoint of the config (`AppOptions.objects`), checked. */
export interface ObjectsConfig {
  /** The store URL served. */
  store: string;
  /** The databases whose pointer and manifests are served: names in the store, or `tessera://` sources. */
  databases: string[];
  public: boolean;
  tokens: string[];
  corsOrigin: string | undefined;
  /** The most bytes of object bodies waiting for slow clients (`ObjectsOptions.maxBufferedBytes`). */
  maxBufferedBytes: number;
  /**
   * The sources of the databases that need a token and read `store` (or stores a `config` names): public
   * objects must expose none of them, which `openObjects` checks again once `tessera://` sources are names.
   */
  guarded: string[];
}

const OBJECTS = ["store", "databases", "public", "tokens", "corsOrigin", "maxBufferedBytes"] as const;

/**
 * A store URL in one spelling, so that two spellings of one store compare equal: a directory as the
 * `file://` URL of its absolute path, and no trailing slash (`/s`, `/s/`, `file:///s` and `file:///s/` are
 * one store, as `s3://b/p` and `s3://b/p/` are).
 *
 * @example Two spellings of one directory
 * ```ts
 * import { normalizeStoreUrl } from "./objects_config.ts";
 * console.log(normalizeStoreUrl("/backups/"), normalizeStoreUrl("file:///backups")); // file:///backups file:///backups
 * ```
 */
export function normalizeStoreUrl(url: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme.length === 1) return `file://${resolve(url)}`;
  if (scheme === "file") {
    try {
      const parsed = new URL(url);
      if (parsed.host === "" || parsed.host === "localhost") {
        return `file://${resolve(decodeURIComponent(parsed.pathname))}`;
      }
    } catch {
      // Not a URL openStore opens either: compared as written.
    }
    return url;
  }
  return `${scheme}${url.slice(scheme.length).replace(/\/+$/, "")}`;
}

/** Checks `objects`: `true` (every default) or an object; the defaults come from the databases served. */
export function parseObjectsConfig(
  value: unknown,
  defaultStores: readonly string[],
  databases: ReadonlyMap<string, Pick<DatabaseConfig, "stores" | "source" | "public">>,
  where: string,
  env: Record<string, string | undefined>,
): ObjectsConfig | undefined {
  if (value === undefined || value === false) return undefined;
  if (value !== true && (typeof value !== "object" || value === null || Array.isArray(value))) {
    invalid(where, `objects is ${JSON.stringify(value)}; expected true, false or an object`);
  }
  const raw = value === true ? {} : value as Json;
  keys(raw, OBJECTS, "objects.", where);
  let store: string;
  if (raw.store !== undefined) {
    if (typeof raw.store !== "string" || raw.store === "") invalid(where, "objects.store is not a store URL");
    store = raw.store;
  } else if (defaultStores.length === 1) {
    store = defaultStores[0]!;
  } else {
    invalid(
      where,
      `objects has no store: set "objects.store" (the top-level "store" names ${
        defaultStores.length === 0 ? "none" : `${defaultStores.length} stores`
      })`,
    );
  }
  const served = normalizeStoreUrl(store);
  const readers = [...databases].filter(([, db]) =>
    db.stores.some((url) => normalizeStoreUrl(url) === served)
  );
  let names: string[];
  if (raw.databases !== undefined) {
    if (!Array.isArray(raw.databases)) invalid(where, "objects.databases is not a list of database names");
    names = raw.databases.map((name, i) => {
      if (typeof name !== "string" || !(isStoredName(name) || name.startsWith("tessera://"))) {
        invalid(
          where,
          `objects.databases[${i}] is ${JSON.stringify(name)}; expected a database's name in the store ` +
            "or a tessera:// source",
        );
      }
      return name;
    });
  } else {
    names = readers.map(([, db]) => db.source);
  }
  if (names.length === 0) {
    invalid(
      where,
      `objects serves no database: no database of "databases" reads ${JSON.stringify(store)}; list the ` +
        'names in "objects.databases"',
    );
  }
  if (raw.public !== undefined && typeof raw.public !== "boolean") {
    invalid(where, "objects.public is not true or false");
  }
  const tokens = raw.tokens === undefined
    ? []
    : Array.isArray(raw.tokens)
    ? raw.tokens.map((t, i) => secret(t, `objects.tokens[${i}]`, where, env))
    : invalid(where, "objects.tokens is not a list of tokens");
  if (raw.public === true && tokens.length > 0) {
    invalid(where, "objects.public is true and objects.tokens is set: give one, not both");
  }
  // Without either, the objects are as open as the databases: public only if nothing here needs a token.
  const isPublic = raw.public === true ||
    (raw.public === undefined && tokens.length === 0 && [...databases.values()].every((db) => db.public));
  if (!isPublic && tokens.length === 0) {
    invalid(
      where,
      'objects has no tokens: give "tokens", or "public": true to serve the store\'s objects to anyone ' +
        "(it defaults to public only when every database is)",
    );
  }
  // A database whose stores a Tessera or Verneuil config names may read this store too.
  const guarded = [...databases].filter(([, db]) =>
    !db.public && (db.stores.length === 0 || readers.some(([, reader]) => reader === db))
  );
  const exposed = guarded.find(([, db]) => names.includes(db.source));
  if (isPublic && exposed !== undefined) {
    const [name, db] = exposed;
    invalid(
      where,
      `objects are public, but they serve database ${JSON.stringify(db.source)}, which databases.${name} ` +
        "guards with tokens: anyone could read its pointer, manifests and chunks at /v1/objects without a " +
        `token. Give "objects.tokens" instead of "public" (the database's tokens, or others), make ` +
        `databases.${name} public, or leave it out of "objects.databases"`,
    );
  }
  if (
    raw.corsOrigin !== undefined && (typeof raw.corsOrigin !== "string" ||
      !isCorsOrigin(raw.corsOrigin))
  ) {
    invalid(
      where,
      `objects.corsOrigin is ${JSON.stringify(raw.corsOrigin)}; expected "*" or an origin such as ` +
        '"https://app.example.com" (scheme, host and port; no path)',
    );
  }
  return {
    store,
    databases: names,
    public: isPublic,
    tokens,
    corsOrigin: raw.corsOrigin as string | undefined,
    maxBufferedBytes: number(
      raw.maxBufferedBytes,
      "objects.maxBufferedBytes",
      where,
      1,
      DEFAULT_MAX_BUFFERED_BYTES,
    ),
    guarded: guarded.map(([, db]) => db.source),
  };
}

/** The objects endpoint's options: its store opened, `tessera://` sources resolved to names in the store. */
export async function openObjects(
  config: ObjectsConfig,
  env: Record<string, string | undefined>,
): Promise<ObjectsOptions> {
  const host = env.TESSERA_HOSTNAME ?? hostname();
  const nameOf = async (source: string) =>
    source.startsWith("tessera://") ? (await parseSource(source, { hostname: host })).name : source;
  const names = await Promise.all(config.databases.map(nameOf));
  if (config.public) {
    // The config compared sources as written; a tessera:// source and the name it derives are one database.
    for (const source of config.guarded) {
      const name = await nameOf(source);
      if (names.includes(name)) {
        throw new TesseraError(
          "CONFIG_INVALID",
          `Cannot serve the store's objects publicly: they serve database "${name}" (${source}), which ` +
            'needs a token: give "objects.tokens" instead of "public", or make the database public',
        );
      }
    }
  }
  let store;
  try {
    store = openStore(config.store, { env });
  } catch (error) {
    throw new TesseraError(
      (error as TesseraError).code ?? "CONFIG_INVALID",
      `Cannot open the store of objects (${config.store}): ${(error as Error).message}`,
      { cause: error },
    );
  }
  return {
    store,
    databases: [...new Set(names)],
    public: config.public,
    tokens: config.tokens,
    corsOrigin: config.corsOrigin,
    maxBufferedBytes: config.maxBufferedBytes,
  };
}
