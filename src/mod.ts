/**
 * Tessera: replicate SQLite databases to S3-compatible storage as content-addressed chunks, and restore
 * and read verified snapshots anywhere.
 *
 * @module
 */

export { TesseraError, type TesseraErrorCode } from "./errors.ts";
export { VERSION } from "./version.ts";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./net/backoff.ts";
export {
  type ByteRange,
  type GetObjectOptions,
  type GetObjectResult,
  type ListEntry,
  type ListObjectsOptions,
  type PutBody,
  type PutObjectOptions,
  S3Client,
  type S3ClientOptions,
  type S3Credentials,
  type S3Object,
  type S3ObjectInfo,
} from "./s3/client.ts";
export { S3Error } from "./s3/errors.ts";
export { s3OptionsFromEnv } from "./s3/env.ts";
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
export { checkKey, checkPrefix, compareKeys } from "./store/keys.ts";
export { MemoryStore } from "./store/memory.ts";
export { LocalStore, type LocalStoreOptions } from "./store/local.ts";
export { S3Store, type S3StoreOptions } from "./store/s3.ts";
export { HttpStore, type HttpStoreOptions } from "./store/http.ts";
export { openStore, type OpenStoreOptions } from "./store/open.ts";
export { SplitStore } from "./store/split.ts";
export type { ChunkList, DatabaseIdentity, Manifest, Pointer } from "./manifest/types.ts";
export { decodeManifest, decodePointer, encodeManifest, encodePointer } from "./manifest/codec.ts";
export { deriveName, parseSource } from "./manifest/naming.ts";
export { chunkKey, manifestKey, pointerKey } from "./manifest/keys.ts";
export { decodeChunk, encodeChunk } from "./chunk/codec.ts";
export {
  type ChunkCache,
  type ChunkSource,
  LayeredChunkSource,
  MemoryChunkCache,
  StoreChunkSource,
} from "./chunk/source.ts";
export { DirectoryChunkCache } from "./chunk/directory_cache.ts";
export { defaultSpoolDir } from "./write/spool.ts";
export { syncDatabase, type SyncOptions, type SyncReport } from "./write/sync.ts";
export { Replicator, type ReplicatorEvent, type ReplicatorOptions } from "./replicate/replicator.ts";
export { readStatus, type ReplicatorStatus, requestFlush, type TargetStatus } from "./replicate/control.ts";
export {
  restoreIfMissing,
  type RestoreIfMissingOptions,
  type RestoreIfMissingResult,
} from "./config/restore_missing.ts";
export { createReplicatingClient, type ReplicatingClientOptions } from "./config/client.ts";
export { type FlushResult, ReplicatingClient } from "./replicate/client.ts";
export {
  databaseNames,
  type DirectorySnapshotOptions,
  type DirectorySnapshotReport,
  snapshotToDirectory,
  type VerifyOptions,
  type VerifyReport,
  verifySnapshot,
} from "./snapshot/directory.ts";
export {
  findSnapshot,
  type FoundSnapshot,
  hasPointer,
  type HistoryEntry,
  type LatestManifest,
  listDatabases,
  listHistory,
  listManifests,
  listSnapshots,
  loadAt,
  type LoadedManifest,
  loadLatest,
  loadPointed,
  loadSequence,
  type ManifestEntry,
  nextSequence,
  pollPointer,
  readPointer,
  type ResolvedSnapshot,
  resolveSnapshot,
  type SkippedStore,
  type SnapshotEntry,
  type SnapshotSelector,
} from "./manifest/catalog.ts";
export { loadManifestFile } from "./manifest/manifest_file.ts";
export {
  CHUNK_REUSE_WINDOW_MS,
  ChunkUploader,
  DEFAULT_GC_GRACE_MS,
  GC_DELETE_WINDOW_MS,
  MIN_GC_GRACE_MS,
  reusable,
  REVERIFY_AFTER_MS,
} from "./write/reuse.ts";
export { formatDuration, parseDuration } from "./history/duration.ts";
export {
  chooseRetained,
  type KeepReason,
  pruneDatabase,
  type PruneOptions,
  type PruneReport,
  type RetentionDecision,
  type RetentionEntry,
  type RetentionPolicy,
} from "./history/prune.ts";
export { collectGarbage, type CollectGarbageOptions, type GarbageReport } from "./history/gc.ts";
export { DEFAULT_TOUCH_AGE_MS, touchChunks, type TouchOptions, type TouchReport } from "./history/touch.ts";
export { referencedChunks } from "./history/references.ts";
export { restoreImage, type RestoreImageOptions, type RestoreResult } from "./restore/restore.ts";
export { loadConfig, normalizeConfig } from "./config/load.ts";
export { chunkSourceFor, describeTarget, openTarget } from "./config/stores.ts";
export { openReplica, type OpenReplicaOptions, type ReplicaSource } from "./config/replica.ts";
export {
  type FreshnessOptions,
  type RefreshLevel,
  Replica,
  type ReplicaEvents,
  type ReplicaStatus,
} from "./replica/replica.ts";
export type { TesseraConfig } from "./config/types.ts";
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
export {
  loadServerConfig,
  openServerDatabases,
  parseServerConfig,
  type ServerConfig,
} from "./server/config.ts";
export { listen, type Listening, type ListenOptions } from "./server/serve.ts";
