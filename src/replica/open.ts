/**
 * `openReplica`: a read-only @libsql/client `Client` over a database replicated to a store.
 *
 * @module
 */

import { hostname as osHostname } from "node:os";
import { type ChunkCache, MemoryChunkCache } from "../chunk/source.ts";
import { loadConfig, normalizeConfig } from "../config/load.ts";
import { chunkSourceFor, openTarget } from "../config/stores.ts";
import type { TesseraConfig } from "../config/types.ts";
import { TesseraError } from "../errors.ts";
import { decodeManifest } from "../manifest/codec.ts";
import { parseManifestKey, pointerKey } from "../manifest/keys.ts";
import { isDatabaseName, parseSource } from "../manifest/naming.ts";
import { type LoadedManifest, loadManifestFile } from "../restore/manifest_source.ts";
import type { BlobStore } from "../store/types.ts";
import type { ReplicaEngine } from "./engine.ts";
import { type FreshnessOptions, Replica, type ReplicaOrigin } from "./replica.ts";
import { WasmEngine } from "./wasm.ts";
import type { Sqlite3 } from "./vfs.ts";

/** Options of {@linkcode openReplica}. */
export interface OpenReplicaOptions extends FreshnessOptions {
  /** `wasm` (default; runs anywhere, no files) or `native` (@libsql/client on a materialized file). */
  engine?: "wasm" | "native" | undefined;
  /** The store(s) to read. The first that holds the database's pointer is polled; chunks come from all. */
  store?: BlobStore | readonly BlobStore[] | undefined;
  /** Instead of `store`: a config (Tessera's or Verneuil's shape; an object, JSON text, or `@file`). */
  config?: unknown;
  /** Environment for the config's S3 credentials and `TESSERA_CONFIG`. @default {process.env} */
  env?: Record<string, string | undefined> | undefined;
  /** A local chunk cache directory (overrides the config's). */
  cacheDirectory?: string | undefined;
  /** Bytes of chunks kept in a memory LRU in front of the stores, beyond what served snapshots hold. @default {0} */
  memoryCacheBytes?: number | undefined;
  /** The host `tessera:///path` means. @default {this machine's host name} */
  hostname?: string | undefined;
  /** The `native` engine's directory for its snapshot files. @default {a new temporary directory} */
  directory?: string | undefined;
  /** A sqlite-wasm module already loaded (browsers that load it their own way). */
  sqlite3?: Sqlite3 | undefined;
  /** Chunk fetches running at once. @default {8} */
  concurrency?: number | undefined;
  /** Cancels opening. */
  signal?: AbortSignal | undefined;
}

/** What {@linkcode openReplica} reads: a database (`tessera://host/abs/path`, `tessera:///abs/path`, a
 * name), a manifest (a file path, a store key), or a manifest's bytes. */
export type ReplicaSource = string | Uint8Array;

/**
 * Opens a read replica. It fetches and verifies the newest snapshot (or the one a manifest names), then
 * implements @libsql/client's `Client` over it; with `autoRefresh` (the default) every transaction starts
 * on the newest snapshot the background poller has prepared.
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
export async function openReplica(source: ReplicaSource, options: OpenReplicaOptions = {}): Promise<Replica> {
  const env = options.env ?? process.env;
  const config = await configFor(options, env);
  const stores = options.store !== undefined
    ? (Array.isArray(options.store) ? [...options.store] : [options.store as BlobStore])
    : [...config.targets, ...config.readOnly].map((t) => openTarget(t, env));
  if (stores.length === 0) {
    throw new TypeError(
      "Cannot open a replica: give `store` (a BlobStore) or `config` with at least one target",
    );
  }
  const origin = await originFor(
    source,
    stores,
    options.hostname ?? env.TESSERA_HOSTNAME ?? osHostname(),
    options.signal,
  );
  const primary = origin.kind === "database" ? origin.store : stores[0]!;
  const before: ChunkCache[] = [];
  if (options.memoryCacheBytes) {
    before.push(new MemoryChunkCache({ capacityBytes: options.memoryCacheBytes }));
  }
  const chunkConfig = options.cacheDirectory === undefined
    ? config
    : { ...config, cache: { directory: options.cacheDirectory, numShards: 128, capacity: 10_000 } };
  const chunks = chunkSourceFor(chunkConfig, primary, stores, before);
  const engine: ReplicaEngine = (options.engine ?? "wasm") === "wasm"
    ? await WasmEngine.create({ chunks, sqlite3: options.sqlite3, concurrency: options.concurrency })
    : options.engine === "native"
    // Imported only when chosen: @libsql/client's native binding does not load in browsers or edge runtimes.
    ? await (await import("./native.ts")).NativeEngine.create({
      chunks,
      directory: options.directory,
      concurrency: options.concurrency,
      intMode: options.intMode,
    })
    : badEngine(options.engine);
  return await Replica.open(engine, origin, options);
}

function badEngine(engine: unknown): never {
  throw new RangeError(`Cannot open a replica: engine ${JSON.stringify(engine)} is not "wasm" or "native"`);
}

async function configFor(
  options: OpenReplicaOptions,
  env: Record<string, string | undefined>,
): Promise<TesseraConfig> {
  if (options.config === undefined) {
    if (options.store !== undefined) return { targets: [], readOnly: [], readOnlyCaches: [] };
    return await loadConfig({ env });
  }
  if (typeof options.config === "string") return await loadConfig({ arg: options.config, env });
  return normalizeConfig(options.config, { source: "openReplica's config" });
}

async function originFor(
  source: ReplicaSource,
  stores: BlobStore[],
  hostname: string,
  signal: AbortSignal | undefined,
): Promise<ReplicaOrigin> {
  if (source instanceof Uint8Array) {
    const manifest = await decodeManifest(source, { what: "the given manifest bytes" });
    return { kind: "manifest", loaded: { manifest, manifestBytes: source, key: "(manifest bytes)" } };
  }
  if (typeof source !== "string" || source === "") {
    throw new TypeError("Cannot open a replica: the source must be a non-empty string or a manifest's bytes");
  }
  if (parseManifestKey(source)) {
    return { kind: "manifest", loaded: await manifestFromStores(source, stores, signal) };
  }
  if (source.startsWith("tessera://") || isDatabaseName(source)) {
    const { name } = await parseSource(source, { hostname });
    for (const store of stores) {
      const head = await store.head(pointerKey(name), { signal });
      if (head.status === "ok") return { kind: "database", store, name };
    }
    throw new TesseraError(
      "NOT_FOUND",
      `No snapshot of database "${name}" in ${stores.map((s) => s.description).join(" or ")}: run ` +
        "`tessera sync` first, or check the source's host and path",
    );
  }
  return { kind: "manifest", loaded: await loadManifestFile(source) };
}

async function manifestFromStores(
  key: string,
  stores: BlobStore[],
  signal: AbortSignal | undefined,
): Promise<LoadedManifest> {
  for (const store of stores) {
    const got = await store.get(key, { signal });
    if (got.status !== "ok") continue;
    const manifest = await decodeManifest(got.body, { what: `${key} in ${store.description}` });
    return { manifest, manifestBytes: got.body, key };
  }
  throw new TesseraError(
    "NOT_FOUND",
    `Cannot open manifest ${key}: it is in none of ${stores.map((s) => s.description).join(", ")}`,
  );
}
