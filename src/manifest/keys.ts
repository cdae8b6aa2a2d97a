/**
 * The store's key layout (`docs/FORMAT.md`, "Objects and keys"). This is the only module that builds or
 * parses keys; everything else asks it. Chunk keys are defined one layer down, in `src/chunk/keys.ts`, so
 * that the chunk layer needs nothing from manifests, and are re-exported here.
 *
 * @module
 */

import { isDatabaseName } from "./naming.ts";

export {
  chunkKey,
  CHUNKS_PREFIX,
  packKey,
  PACKS_PREFIX,
  parseChunkKey,
  parsePackKey,
} from "../chunk/keys.ts";

/** The prefix every database's keys share; listing it with delimiter `/` lists the databases. */
export const DATABASES_PREFIX = "dbs/";

const MANIFEST_KEY = /^dbs\/([^/]+)\/manifests\/([0-9a-f]{16})$/;

/**
 * The key of database `name`'s pointer: `dbs/<name>/pointer`. Throws `RangeError` unless `name` is a chosen
 * or derived database name.
 *
 * @example
 * ```ts
 * import { pointerKey } from "./keys.ts";
 * console.log(pointerKey("app")); // "dbs/app/pointer"
 * ```
 */
export function pointerKey(name: string): string {
  return `${databasePrefix(name)}pointer`;
}

/**
 * The key of database `name`'s replication lease: `dbs/<name>/lease`, held by the one replicator that
 * publishes it. Throws `RangeError` for an invalid name.
 *
 * @example
 * ```ts
 * import { leaseKey } from "./keys.ts";
 * console.log(leaseKey("app")); // "dbs/app/lease"
 * ```
 */
export function leaseKey(name: string): string {
  return `${databasePrefix(name)}lease`;
}

/**
 * The key of manifest `sequence` of database `name`: `dbs/<name>/manifests/<16 lower-case hex digits>`, so
 * key order is sequence order. Throws `RangeError` for an invalid name or a sequence outside 1 to 2^53 - 1.
 *
 * @example
 * ```ts
 * import { manifestKey } from "./keys.ts";
 * console.log(manifestKey("app", 26)); // "dbs/app/manifests/000000000000001a"
 * ```
 */
export function manifestKey(name: string, sequence: number): string {
  if (!Number.isSafeInteger(sequence) || sequence < 1) {
    throw new RangeError(`Invalid manifest sequence ${sequence}: expected an integer from 1 to 2^53 - 1`);
  }
  return `${manifestsPrefix(name)}${sequence.toString(16).padStart(16, "0")}`;
}

/**
 * The prefix of database `name`'s manifest keys: `dbs/<name>/manifests/`. Throws `RangeError` for an invalid
 * name.
 *
 * @example
 * ```ts
 * import { manifestsPrefix } from "./keys.ts";
 * console.log(manifestsPrefix("app")); // "dbs/app/manifests/"
 * ```
 */
export function manifestsPrefix(name: string): string {
  return `${databasePrefix(name)}manifests/`;
}

/**
 * The prefix of all of database `name`'s keys: `dbs/<name>/`. Throws `RangeError` for an invalid name.
 *
 * @example
 * ```ts
 * import { databasePrefix } from "./keys.ts";
 * console.log(databasePrefix("app")); // "dbs/app/"
 * ```
 */
export function databasePrefix(name: string): string {
  if (!isDatabaseName(name)) {
    throw new RangeError(`Invalid database name ${JSON.stringify(name)}: expected a chosen or derived name`);
  }
  return `${DATABASES_PREFIX}${name}/`;
}

/**
 * The database name and sequence a manifest key names, or `undefined` when `key` is not a manifest key.
 *
 * @example
 * ```ts
 * import { parseManifestKey } from "./keys.ts";
 * console.log(parseManifestKey("dbs/app/manifests/000000000000001a")); // { name: "app", sequence: 26 }
 * ```
 */
export function parseManifestKey(key: string): { name: string; sequence: number } | undefined {
  const match = MANIFEST_KEY.exec(key);
  if (!match) return undefined;
  const [, name, hex] = match as unknown as [string, string, string];
  const sequence = BigInt(`0x${hex}`);
  if (!isDatabaseName(name) || sequence < 1n || sequence > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return { name, sequence: Number(sequence) };
}
