/**
 * The `objects` field of `tessera serve`'s config: which store's objects `/v1/objects` serves, for which
 * databases, to whom (docs/SERVER.md, "Objects endpoint and static hosting").
 *
 * @module
 */

import { hostname } from "node:os";
import { TesseraError } from "../errors.ts";
import { isDatabaseName as isStoredName, parseSource } from "../manifest/naming.ts";
import { openStore } from "../store/open.ts";
import { invalid, type Json, keys, secret } from "./_config_fields.ts";
import { isCorsOrigin, type ObjectsOptions } from "./objects.ts";

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
}

const OBJECTS = ["store", "databases", "public", "tokens", "corsOrigin"] as const;

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
    names = [...databases.values()].filter((db) => db.stores.includes(store)).map((db) => db.source);
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
  };
}

/** The objects endpoint's options: its store opened, `tessera://` sources resolved to names in the store. */
export async function openObjects(
  config: ObjectsConfig,
  env: Record<string, string | undefined>,
): Promise<ObjectsOptions> {
  const host = env.TESSERA_HOSTNAME ?? hostname();
  const names = await Promise.all(config.databases.map(async (source) => {
    if (!source.startsWith("tessera://")) return source;
    return (await parseSource(source, { hostname: host })).name;
  }));
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
  };
}
