/**
 * The normalised configuration: what `loadConfig` returns whichever shape the user wrote (Tessera's own
 * or Verneuil's). Every path is absolute; every optional field is absent rather than `undefined`.
 *
 * @module
 */

/** An S3 bucket (and key prefix) that holds a store. */
export interface S3TargetConfig {
  kind: "s3";
  /** The bucket of manifests and pointers, and of chunks unless `chunkBucket` is set. */
  bucket: string;
  /** The key prefix inside the bucket: empty, or ending with `/`. */
  prefix: string;
  /** Falls back to `AWS_REGION`/`AWS_DEFAULT_REGION`, then `us-east-1`. */
  region?: string;
  /** A custom endpoint such as `http://127.0.0.1:9000`; falls back to `AWS_ENDPOINT_URL(_S3)`, then AWS. */
  endpoint?: string;
  /** Address buckets in the URL path instead of the host name (Verneuil: `domain_addressing: false`). */
  forcePathStyle?: boolean;
  /** Chunks (`chunks/...` keys) live in this bucket instead (Verneuil's separate `chunk_bucket`). */
  chunkBucket?: string;
  /** The key prefix for chunks in the chunk bucket: empty, or ending with `/`. Defaults to `prefix`. */
  chunkPrefix?: string;
}

/** A local directory that holds a store (a `file:` target). */
export interface DirectoryTargetConfig {
  kind: "directory";
  /** Absolute path. */
  directory: string;
}

/** A read-only store behind plain HTTP: a static file server or CDN serving the same key layout. */
export interface HttpTargetConfig {
  kind: "http";
  /** The base URL, `http:` or `https:`. */
  url: string;
}

/** Where a store lives. */
export type TargetConfig = S3TargetConfig | DirectoryTargetConfig | HttpTargetConfig;

/** A local chunk cache this process reads and fills (Verneuil's `local` target). */
export interface CacheConfig {
  /** Absolute path. */
  directory: string;
  /** Subdirectories chunk files are spread over; 0 or 1 means a plain directory. */
  numShards: number;
  /** About how many chunk files the cache keeps before evicting. */
  capacity: number;
}

/** Another process's chunk cache, read but never written (Verneuil's `read_only` target). */
export interface ReadOnlyCacheConfig {
  /** Absolute path. */
  directory: string;
  /** The shard count the owning process uses; 0 or 1 means a plain directory. */
  numShards: number;
}

/** Tessera's configuration after loading and normalisation. */
export interface TesseraConfig {
  /** Writable replication targets, in order; a sync writes to every one. Reads try them in order too. */
  targets: TargetConfig[];
  /** More sources that are only read, consulted after the caches and the targets. */
  readOnly: TargetConfig[];
  /** The local chunk cache, when there is one. */
  cache?: CacheConfig;
  /** Other processes' caches, probed after `cache` and before any store. */
  readOnlyCaches: ReadOnlyCacheConfig[];
  /** Absolute path of the directory for local sync state (Verneuil's `replication_spooling_dir`). */
  spoolDir?: string;
  /** Chunk size in bytes for new snapshots: a power of two from 4096 to 1048576. */
  chunkSize?: number;
}

/** Shards of a cache when the config does not say. */
export const DEFAULT_CACHE_SHARDS = 128;
/** Chunk files a cache keeps when the config does not say (640 MiB of 64 KiB chunks). */
export const DEFAULT_CACHE_CAPACITY = 10_000;
/** Smallest chunk size. */
export const MIN_CHUNK_SIZE = 4096;
/** Largest chunk size. */
export const MAX_CHUNK_SIZE = 1_048_576;
