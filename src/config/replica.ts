/**
 * `openReplica` from a config: the entry point `mod.ts` exports. It resolves the config (an object, JSON
 * text, `@file`, or `TESSERA_CONFIG`) into stores and chunk caches, then opens the replica with
 * `src/replica/open.ts`, which takes only those.
 *
 * @module
 */

import process from "node:process";
import {
  openReplica as openReplicaOn,
  type OpenReplicaOptions as StoreReplicaOptions,
  type ReplicaSource,
} from "../replica/open.ts";
import type { Replica } from "../replica/replica.ts";
import { resolveConfig } from "./load.ts";
import { chunkCachesFor, openTarget } from "./stores.ts";
import { DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_SHARDS } from "./types.ts";

export type { ReplicaSource };

/** Options of {@linkcode openReplica}. */
export interface OpenReplicaOptions extends StoreReplicaOptions {
  /** Instead of `store`: a config (Tessera's or Verneuil's shape; an object, JSON text, or `@file`). Its
   * targets and read-only sources are read, through its local cache and read-only caches. */
  config?: unknown;
  /** Environment for the config's S3 credentials, `TESSERA_CONFIG` and `TESSERA_HOSTNAME`. @default {process.env} */
  env?: Record<string, string | undefined> | undefined;
  /** A local chunk cache directory (overrides the config's). */
  cacheDirectory?: string | undefined;
}

/**
 * Opens a read replica of a database in the stores `store` names or a config's targets (without either,
 * those of `TESSERA_CONFIG`), reading chunks through the config's caches. It fetches and verifies the
 * newest snapshot (or the one a manifest names), then implements @libsql/client's `Client` over it; with
 * `autoRefresh` (the default) every transaction starts on the newest snapshot the background poller has
 * prepared.
 *
 * @example Reading a replica of a database backed up to a directory
 * ```ts
 * import { openReplica } from "./replica.ts";
 *
 * const replica = await openReplica("tessera://db1/srv/app.db", { config: { targets: ["/backups"] } })
 *   .catch((error) => console.log(error.code)); // NOT_FOUND
 * if (replica) {
 *   console.log((await replica.execute("SELECT count(*) AS n FROM users")).rows[0]?.n);
 *   replica.close();
 * }
 * ```
 */
export async function openReplica(source: ReplicaSource, options: OpenReplicaOptions = {}): Promise<Replica> {
  const env = options.env ?? process.env;
  const config = await resolveConfig(options.config, {
    env,
    caller: "openReplica",
    hasStores: options.store !== undefined,
  });
  const store = options.store ?? [...config.targets, ...config.readOnly].map((t) => openTarget(t, env));
  const caches = chunkCachesFor(
    options.cacheDirectory === undefined ? config : {
      ...config,
      cache: {
        directory: options.cacheDirectory,
        numShards: DEFAULT_CACHE_SHARDS,
        capacity: DEFAULT_CACHE_CAPACITY,
      },
    },
  );
  return await openReplicaOn(source, {
    ...options,
    store,
    env,
    caches: [...(options.caches ?? []), ...caches],
  });
}
