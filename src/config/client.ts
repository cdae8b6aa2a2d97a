/**
 * `createReplicatingClient` from a config: the entry point `mod.ts` exports. It resolves the config (an
 * object, JSON text, `@file`, or `TESSERA_CONFIG`) into the writable stores, the spool directory and the
 * chunk size, then starts the client with `src/replicate/client.ts`, which takes only those.
 *
 * @module
 */

import process from "node:process";
import {
  createReplicatingClient as createClientOn,
  localDatabase,
  type ReplicatingClient,
  type ReplicatingClientOptions as StoreClientOptions,
} from "../replicate/client.ts";
import { resolveConfig } from "./load.ts";
import { openTarget } from "./stores.ts";

/** Options of {@linkcode createReplicatingClient}: the local client's, the stores' or a config's, the
 * replicator's. */
export interface ReplicatingClientOptions extends StoreClientOptions {
  /** Instead of `store`: a config (Tessera's or Verneuil's shape; an object, JSON text, or `@file`). Its
   * writable targets receive the snapshots; it also supplies `spoolDir` and `chunkSize` when not given. */
  config?: unknown;
  /** Environment for the config's S3 credentials, `TESSERA_CONFIG` and `TESSERA_HOSTNAME`. @default {process.env} */
  env?: Record<string, string | undefined> | undefined;
}

/**
 * Opens the database at `options.url` with @libsql/client and replicates it to the stores `store` names
 * or a config's writable targets (without either, those of `TESSERA_CONFIG`) while the application writes
 * through the returned client. Fails like `Replicator.start` (for example with `LEASE_HELD` when another
 * replicator has the database), closing the local client first.
 *
 * @example A short-lived program
 * ```ts ignore
 * import { createReplicatingClient } from "./client.ts";
 *
 * const db = await createReplicatingClient({ url: "file:app.db", config: { targets: ["/backups"] } });
 * await db.execute("CREATE TABLE IF NOT EXISTS log (at INTEGER)");
 * const { pending } = await db.closeAsync(); // flushes, then stops
 * console.log(pending); // 0: everything is published
 * ```
 */
export async function createReplicatingClient(options: ReplicatingClientOptions): Promise<ReplicatingClient> {
  // A bad URL is reported before a bad config.
  localDatabase(options);
  const env = options.env ?? process.env;
  const config = await resolveConfig(options.config, {
    env,
    caller: "createReplicatingClient",
    hasStores: options.store !== undefined,
  });
  const { config: _config, ...rest } = options;
  return await createClientOn({
    ...rest,
    env,
    store: options.store ?? config.targets.map((t) => openTarget(t, env)),
    spoolDir: options.spoolDir ?? config.spoolDir,
    chunkSize: options.chunkSize ?? config.chunkSize,
  });
}
