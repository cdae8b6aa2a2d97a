/**
 * Opening a replica, on any runtime: a read-only @libsql/client `Client` over a database replicated to the
 * given stores. What only some runtimes have (a host name, environment variables, files, the native
 * engine) comes in a {@linkcode ReplicaHost}: `open.ts` gives Deno's, Bun's and Node's, the browser entry
 * point (`web.ts`) gives none.
 *
 * @module
 */

import { storeLocator } from "../manifest/locate.ts";
import { readThrough } from "../chunk/layers.ts";
import { type ChunkCache, type ChunkSource, MemoryChunkCache } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import { type LoadedManifest, resolveSnapshot, type SkippedStore } from "../manifest/catalog.ts";
import { decodeManifest } from "../manifest/codec.ts";
import { parseManifestKey } from "../manifest/keys.ts";
import { isDatabaseName, parseSource } from "../manifest/naming.ts";
import { type BlobStore, storeList } from "../store/types.ts";
import type { ReplicaEngine } from "./engine.ts";
import { type FirstSnapshot, type FreshnessOptions, Replica, type ReplicaOrigin } from "./replica.ts";
import { WasmEngine } from "./wasm.ts";
import type { Sqlite3 } from "./vfs.ts";

/** What a runtime lends {@linkcode openReplicaOn}; a browser or an edge isolate lends nothing. */
export interface ReplicaHost {
  /** This machine's host name: the host `tessera:///path` means when neither options nor env say. */
  hostname?: (() => string) | undefined;
  /** Environment variables (`TESSERA_HOSTNAME`). */
  env?: Record<string, string | undefined> | undefined;
  /** Reads a manifest copied into a file (a source that names neither a database nor a store key). */
  manifestFile?: ((path: string) => Promise<LoadedManifest>) | undefined;
  /** Creates the `native` engine. */
  nativeEngine?:
    | ((options: {
      chunks: ChunkSource;
      directory: string | undefined;
      concurrency: number | undefined;
      intMode: OpenReplicaOptions["intMode"];
    }) => Promise<ReplicaEngine>)
    | undefined;
}

/** Options of {@linkcode openReplicaOn}. */
export interface OpenReplicaOptions extends FreshnessOptions {
  /** `wasm` (default; runs anywhere, no files) or `native` (@libsql/client on a materialized file). */
  engine?: "wasm" | "native" | undefined;
  /** The store(s) to read. The one with the newest pointer is polled (on a tie, the first); chunks come
   * from all. */
  store?: BlobStore | readonly BlobStore[] | undefined;
  /** Chunk caches read (and filled) before the stores, in order, after the memory cache. @default {[]} */
  caches?: readonly ChunkCache[] | undefined;
  /** Environment for `TESSERA_HOSTNAME`. @default {the runtime's (none in a browser)} */
  env?: Record<string, string | undefined> | undefined;
  /**
   * When the wasm engine fetches a snapshot's chunks: `"lazy"` as queries need them (the open reads the
   * pointer, the manifest and its index, and returns), `"eager"` all before the snapshot is served, `"auto"`
   * eagerly up to 16 MiB (and up to `memoryCacheBytes`), lazily above. The native engine is always eager.
   * @default {"auto"}
   */
  load?: "lazy" | "eager" | "auto" | undefined;
  /** With lazy loading, fetch the rest of the served snapshot in the background while it fits under
   * `memoryCacheBytes`; stopped by a refresh or `close()`. @default {false} */
  hydrate?: boolean | undefined;
  /** With lazy loading, run statements that need more than `memoryCacheBytes` at once, or that keep
   * missing chunks (scans), in a worker where a read can wait (Deno, Bun, cross-origin isolated browsers).
   * Without it they run again after each batch fetched, and may pin more than the cap until they finish.
   * @default {true} */
  offload?: boolean | undefined;
  /**
   * The memory cap, in bytes of chunks. wasm: chunks kept beyond what eager snapshots and running statements
   * pin (a lazy replica's whole memory for chunks, least recently used let go first); native: a memory LRU
   * in front of the stores. @default {wasm: 64 MiB (0 with load "eager"); native: 0}
   */
  memoryCacheBytes?: number | undefined;
  /**
   * wasm: the longest a statement may run, in ms, before SQLite interrupts it with `SQLITE_INTERRUPT`; with a
   * worker (Deno, Bun), a statement still running after 50 ms moves there, so the thread serves other
   * queries meanwhile. The native engine has no such limit and refuses it. @default {0: no limit}
   */
  queryTimeoutMs?: number | undefined;
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
  /** Told of each store that failed (unreachable, a damaged pointer) while the newest snapshot was chosen;
   * it was skipped. @default {ignore them} */
  onSkippedStore?: ((skipped: SkippedStore) => void) | undefined;
}

/** What {@linkcode openReplica} reads: a database (`tessera://host/abs/path`, `tessera:///abs/path`, a
 * name), a manifest (a file path, a store key), or a manifest's bytes. */
export type ReplicaSource = string | Uint8Array;

/**
 * Opens a read replica with what `host` lends (see `open.ts` for `openReplica` on Deno, Bun and Node, and
 * `web.ts` for browsers and edge isolates).
 */
export async function openReplicaOn(
  host: ReplicaHost,
  source: ReplicaSource,
  options: OpenReplicaOptions = {},
): Promise<Replica> {
  const env = options.env ?? host.env ?? {};
  const stores = storeList(options.store);
  if (stores.length === 0) {
    throw new TypeError(
      "Cannot open a replica: give `store` (a BlobStore; with the config-taking openReplica, a config with at least one target)",
    );
  }
  const { origin, first } = await originFor(source, stores, {
    manifestFile: host.manifestFile,
    hostname: options.hostname ?? env.TESSERA_HOSTNAME ?? host.hostname?.(),
    signal: options.signal,
    onSkippedStore: options.onSkippedStore,
  });
  const primary = origin.kind === "database" ? origin.store : stores[0]!;
  const wasm = (options.engine ?? "wasm") === "wasm";
  if (!wasm && options.load === "lazy") {
    throw new TesseraError(
      "UNSUPPORTED",
      'Cannot open a replica with load "lazy" on engine "native": it reads whole files; use engine "wasm"',
    );
  }
  if (!wasm && options.queryTimeoutMs) {
    throw new TesseraError(
      "UNSUPPORTED",
      'Cannot open a replica with queryTimeoutMs on engine "native": libsql runs a statement to its end; use engine "wasm"',
    );
  }
  const before: ChunkCache[] = [];
  // The wasm engine holds chunks by id itself, under the same cap.
  if (options.memoryCacheBytes && !wasm) {
    before.push(new MemoryChunkCache({ capacityBytes: options.memoryCacheBytes }));
  }
  const chunks = readThrough(primary, {
    caches: [...before, ...(options.caches ?? [])],
    stores,
    locate: storeLocator,
  });
  const engine: ReplicaEngine = wasm
    ? await WasmEngine.create({
      chunks,
      sqlite3: options.sqlite3,
      concurrency: options.concurrency,
      load: options.load,
      hydrate: options.hydrate,
      offload: options.offload,
      memoryCacheBytes: options.memoryCacheBytes,
      queryTimeoutMs: options.queryTimeoutMs,
    })
    : options.engine === "native"
    ? await nativeEngine(host, {
      chunks,
      directory: options.directory,
      concurrency: options.concurrency,
      intMode: options.intMode,
    })
    : badEngine(options.engine);
  return await Replica.open(engine, origin, { ...options, first });
}

function nativeEngine(
  host: ReplicaHost,
  options: Parameters<NonNullable<ReplicaHost["nativeEngine"]>>[0],
): Promise<ReplicaEngine> {
  if (!host.nativeEngine) {
    throw new TesseraError(
      "UNSUPPORTED",
      'Cannot open a replica with engine "native" here: this build has only the wasm engine (use engine "wasm")',
    );
  }
  return host.nativeEngine(options);
}

function badEngine(engine: unknown): never {
  throw new RangeError(`Cannot open a replica: engine ${JSON.stringify(engine)} is not "wasm" or "native"`);
}

async function originFor(
  source: ReplicaSource,
  stores: BlobStore[],
  options: Pick<OpenReplicaOptions, "signal" | "onSkippedStore"> & {
    hostname: string | undefined;
    manifestFile: ReplicaHost["manifestFile"];
  },
): Promise<{ origin: ReplicaOrigin; first?: FirstSnapshot }> {
  const { hostname, signal } = options;
  if (source instanceof Uint8Array) {
    const manifest = await decodeManifest(source, { what: "the given manifest bytes" });
    return {
      origin: { kind: "manifest", loaded: { manifest, manifestBytes: source, key: "(manifest bytes)" } },
    };
  }
  if (typeof source !== "string" || source === "") {
    throw new TypeError("Cannot open a replica: the source must be a non-empty string or a manifest's bytes");
  }
  if (parseManifestKey(source)) {
    return { origin: { kind: "manifest", loaded: await manifestFromStores(source, stores, signal) } };
  }
  if (source.startsWith("tessera://") || isDatabaseName(source)) {
    if (hostname === undefined && source.startsWith("tessera:///")) {
      throw new TypeError(
        `Cannot open a replica of "${source}": it names this machine's host, and this runtime has no host ` +
          "name; write tessera://HOST/PATH or give the hostname option",
      );
    }
    const { name } = await parseSource(source, { hostname: hostname ?? "" });
    // The replica follows the store with the newest pointer: one that missed syncs would serve old data.
    const { store, skipped, pointer, etag, loaded } = await resolveSnapshot(stores, { name }, {
      signal,
      hint: "run `tessera sync` first, or check the source's host and path",
    });
    for (const skip of skipped) options.onSkippedStore?.(skip);
    // What was read to choose the store is the first snapshot: the replica does not read it again.
    return { origin: { kind: "database", store, name }, first: { pointer: pointer!, etag, loaded } };
  }
  if (!options.manifestFile) {
    throw new TesseraError(
      "UNSUPPORTED",
      `Cannot open a replica of "${source}": it names no database (tessera://HOST/PATH or a name) nor a ` +
        "manifest key, and this runtime reads no manifest files",
    );
  }
  return { origin: { kind: "manifest", loaded: await options.manifestFile(source) } };
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
