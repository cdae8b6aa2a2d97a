/**
 * `restoreIfMissing` with a config's chunk caches: the entry point `mod.ts` exports. It opens the config's
 * local cache and other processes' read-only caches, then restores with `src/replicate/restore_missing.ts`,
 * which takes only built caches.
 *
 * @module
 */

import {
  restoreIfMissing as restoreIfMissingThrough,
  type RestoreIfMissingOptions as CacheRestoreOptions,
  type RestoreIfMissingResult,
} from "../replicate/restore_missing.ts";
import { chunkCachesFor } from "./stores.ts";
import type { TesseraConfig } from "./types.ts";

export type { RestoreIfMissingResult };

/** Options of {@linkcode restoreIfMissing}. */
export interface RestoreIfMissingOptions extends CacheRestoreOptions {
  /** The local chunk cache and other processes' caches to read through, after `caches`. @default {no caches} */
  config?: Pick<TesseraConfig, "cache" | "readOnlyCaches"> | undefined;
}

/**
 * Restores the database at `path` from the newest snapshot of `options.name` in `options.stores` when
 * `path` does not exist, reading chunks through the config's caches; see `src/replicate/restore_missing.ts`
 * for what is checked, removed and kept.
 *
 * @example Before starting a replicator
 * ```ts ignore
 * import { LocalStore } from "../store/local.ts";
 * import { restoreIfMissing } from "./restore_missing.ts";
 * const result = await restoreIfMissing("/srv/app.db", {
 *   stores: [new LocalStore("/backups")],
 *   name: "app",
 *   config: { cache: { directory: "/var/cache/tessera", numShards: 128, capacity: 10_000 }, readOnlyCaches: [] },
 * });
 * if (result.restored) console.log(`restored sequence ${result.sequence}`);
 * ```
 */
export async function restoreIfMissing(
  path: string,
  options: RestoreIfMissingOptions,
): Promise<RestoreIfMissingResult> {
  const { config, ...rest } = options;
  const caches = [...(options.caches ?? []), ...(config ? chunkCachesFor(config) : [])];
  return await restoreIfMissingThrough(path, { ...rest, caches });
}
