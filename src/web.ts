/**
 * Tessera for browsers and edge isolates: read replicas over memory, S3 and HTTP stores, with verified
 * chunks and fresh snapshots, and nothing that needs a filesystem, a process or native code. Nothing in this
 * entry point's import closure is a `node:` module (a test bundles it for the browser and checks); where
 * Deno, Bun or Node offer more (zstd in `node:zlib`), it is looked up at run time, with a pure-JS fallback.
 *
 * In a browser, replicas keep the chunks they fetch in the origin private file system
 * ({@linkcode OpfsChunkCache}), so a reload or another tab of the origin reads them from disk.
 *
 * Writing (sync, replicate), restoring to files, directory stores and caches, the native engine and the CLI
 * live behind the main entry point (`mod.ts`).
 *
 * @example A replica over a store served by a static host
 * ```ts
 * import { HttpStore, openReplica } from "./web.ts";
 *
 * const store = new HttpStore("https://backups.example.com/store/");
 * const replica = await openReplica("app", { store }).catch((error) => console.log(error.code));
 * replica?.close();
 * ```
 *
 * @module
 */

import { checkOpfsCacheOptions, OpfsChunkCache, type OpfsChunkCacheOptions } from "./chunk/opfs_cache.ts";
import { TesseraError } from "./errors.ts";
import { openReplicaOn, type OpenReplicaOptions, type ReplicaSource } from "./replica/open_core.ts";
import type { Replica } from "./replica/replica.ts";

export { TesseraError, type TesseraErrorCode } from "./errors.ts";
export { VERSION } from "./version.ts";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./net/backoff.ts";
export { S3Client, type S3ClientOptions, type S3Credentials } from "./s3/client.ts";
export { S3Error } from "./s3/errors.ts";
export type {
  BlobInfo,
  BlobStore,
  GetOptions,
  GetResult,
  HeadResult,
  ListItem,
  ListOptions,
  PutOptions,
  Range,
  StoreCallOptions,
  StoreCapabilities,
} from "./store/types.ts";
export { MemoryStore } from "./store/memory.ts";
export { S3Store, type S3StoreOptions } from "./store/s3.ts";
export { HttpStore, type HttpStoreOptions } from "./store/http.ts";
export type { ChunkList, DatabaseIdentity, Manifest, Pointer } from "./manifest/types.ts";
export { decodeManifest, decodePointer } from "./manifest/codec.ts";
export { deriveName, parseSource } from "./manifest/naming.ts";
export { chunkKey, manifestKey, pointerKey } from "./manifest/keys.ts";
export {
  listDatabases,
  listHistory,
  loadLatest,
  readPointer,
  resolveSnapshot,
  type SnapshotSelector,
} from "./manifest/catalog.ts";
export { decodeChunk } from "./chunk/codec.ts";
export {
  type ChunkCache,
  type ChunkSource,
  LayeredChunkSource,
  MemoryChunkCache,
  StoreChunkSource,
} from "./chunk/source.ts";
export {
  OpfsChunkCache,
  type OpfsChunkCacheOptions,
  type OpfsChunkCacheStats,
  type OpfsDirectoryHandle,
  type OpfsFileHandle,
  type OpfsWritable,
} from "./chunk/opfs_cache.ts";
export { readImage, type ReadImageOptions } from "./restore/read_image.ts";
export type { OpenReplicaOptions, ReplicaSource } from "./replica/open_core.ts";
export { Replica, type ReplicaStatus, type StatementDescription } from "./replica/replica.ts";
export { type AppOptions, createApp, type ServedDatabase, type TesseraApp } from "./server/app.ts";
export { createFetchHandler, type FetchHandler } from "./server/edge.ts";
export { OBJECTS_PATH, type ObjectsOptions } from "./server/objects.ts";
export {
  bookmarkFetch,
  type BookmarkFetchOptions,
  CTIME_HEADER,
  MIN_SEQUENCE_HEADER,
  SEQUENCE_HEADER,
  WAIT_HEADER,
} from "./server/bookmarks.ts";
export { ServerError, type ServerErrorCode } from "./server/errors.ts";
export { DEFAULT_LIMITS, type ServerLimits } from "./server/limits.ts";
export { countingStore, type StoreCounters, storeCounters } from "./server/metrics.ts";

/** Options of the browser entry point's {@linkcode openReplica}. */
export interface WebOpenReplicaOptions extends OpenReplicaOptions {
  /**
   * Keeps chunks in the origin private file system, behind the engine's memory, so a reload or another
   * tab reads them from disk instead of the store: `false` turns it off, options configure it. Used where
   * {@linkcode OpfsChunkCache.available} (browsers), and only when `caches` is not given.
   * @default {one OpfsChunkCache with its defaults, shared by the replicas of this page or worker}
   */
  opfs?: false | OpfsChunkCacheOptions | undefined;
}

let sharedOpfsCache: OpfsChunkCache | undefined;

/**
 * Opens a read replica on the wasm engine (the only one here). A database named by `tessera:///PATH` needs
 * the `hostname` option: a browser has no host name of its own. In a browser, chunks are also kept in the
 * origin private file system (see `opfs`). Every failure is a rejection: bad `opfs` options reject with
 * `TypeError` or `RangeError` naming the option, on every runtime; a page without Web Crypto
 * (`crypto.subtle`, which browsers offer only in secure contexts) rejects with `TesseraError`
 * `UNSUPPORTED`.
 *
 * @example A replica that keeps no chunks on disk
 * ```ts
 * import { HttpStore, openReplica } from "./web.ts";
 *
 * const store = new HttpStore("https://backups.example.com/store/");
 * const replica = await openReplica("app", { store, opfs: false }).catch(() => undefined);
 * replica?.close();
 * ```
 */
export async function openReplica(
  source: ReplicaSource,
  options: WebOpenReplicaOptions = {},
): Promise<Replica> {
  const { opfs, ...rest } = options;
  if (opfs !== undefined && opfs !== false) {
    if (typeof opfs !== "object" || opfs === null) {
      const given = String(opfs);
      throw new TypeError(
        `Cannot open a replica: opfs must be false or an object of OpfsChunkCache options, not ${given}`,
      );
    }
    checkOpfsCacheOptions(opfs, { action: "Cannot open a replica", name: "opfs" });
  }
  const { crypto } = globalThis as { crypto?: { subtle?: { digest?: unknown } } };
  if (typeof crypto?.subtle?.digest !== "function") {
    throw new TesseraError(
      "UNSUPPORTED",
      "Cannot open a replica: this page has no Web Crypto (crypto.subtle), which verifies every chunk " +
        "read; browsers offer it only in secure contexts: serve the page over HTTPS or from localhost " +
        "(not over plain http from another host, nor from a data: URL)",
    );
  }
  if (rest.caches === undefined && opfs !== false && OpfsChunkCache.available()) {
    rest.caches = [
      opfs === undefined ? (sharedOpfsCache ??= new OpfsChunkCache()) : new OpfsChunkCache(opfs),
    ];
  }
  return await openReplicaOn({}, source, rest);
}
