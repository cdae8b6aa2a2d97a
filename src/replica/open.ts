/**
 * `openReplica` on Deno, Bun and Node: the portable opening of `open_core.ts` with what these runtimes
 * lend it: the machine's host name, `process.env`, manifest files, and the `native` engine (imported only
 * when chosen: @libsql/client's native binding does not load in edge runtimes).
 *
 * @module
 */

import { hostname } from "node:os";
import process from "node:process";
import { loadManifestFile } from "../manifest/manifest_file.ts";
import { openReplicaOn, type OpenReplicaOptions, type ReplicaHost, type ReplicaSource } from "./open_core.ts";
import type { Replica } from "./replica.ts";

export type { OpenReplicaOptions, ReplicaHost, ReplicaSource } from "./open_core.ts";

const HOST: ReplicaHost = {
  hostname,
  env: process.env,
  manifestFile: loadManifestFile,
  nativeEngine: async (options) => (await import("./native.ts")).NativeEngine.create(options),
};

/**
 * Opens a read replica. It fetches and verifies the newest snapshot (or the one a manifest names), then
 * implements @libsql/client's `Client` over it; with `autoRefresh` (the default) every transaction starts
 * on the newest snapshot the background poller has prepared.
 *
 * It reads the stores and caches it is given; the `openReplica` of `src/config/replica.ts` (the one
 * `mod.ts` exports) also takes a config, or `TESSERA_CONFIG`, and opens them from it.
 *
 * @example Reading a replica of a database backed up to a directory
 * ```ts
 * import { openReplica } from "./open.ts";
 * import { LocalStore } from "../store/local.ts";
 *
 * const replica = await openReplica("tessera://db1/srv/app.db", { store: new LocalStore("/backups") })
 *   .catch((error) => console.log(error.code)); // NOT_FOUND
 * if (replica) {
 *   console.log((await replica.execute("SELECT count(*) AS n FROM users")).rows[0]?.n);
 *   replica.close();
 * }
 * ```
 */
export function openReplica(source: ReplicaSource, options: OpenReplicaOptions = {}): Promise<Replica> {
  return openReplicaOn(HOST, source, options);
}
