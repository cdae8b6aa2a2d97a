/**
 * From configured targets to open stores and chunk caches, and to words for messages.
 *
 * @module
 */

import { storeLocator } from "../manifest/locate.ts";
import { readThrough } from "../chunk/layers.ts";
import type { ChunkCache, ChunkSource } from "../chunk/source.ts";
import { DirectoryChunkCache } from "../chunk/directory_cache.ts";
import { errorMessage, TesseraError } from "../errors.ts";
import { describeUrl } from "../net/http.ts";
import type { S3ClientOptions } from "../s3/client.ts";
import { s3OptionsFromEnv } from "../s3/env.ts";
import { HttpStore } from "../store/http.ts";
import { LocalStore } from "../store/local.ts";
import { S3Store } from "../store/s3.ts";
import { SplitStore } from "../store/split.ts";
import type { BlobStore } from "../store/types.ts";
import { redactUrl } from "./_fields.ts";
import type { S3TargetConfig, TargetConfig, TesseraConfig } from "./types.ts";

/** Keys under this prefix are chunks; a target with a separate chunk bucket keeps them there. */
const CHUNK_PREFIX = "chunks/";
const PACKS_PREFIX = "packs/";

/**
 * Opens the store a target names. S3 credentials, and the region and endpoint a target leaves out, come
 * from the `AWS_*` variables of `env`. A target whose chunks live in another bucket (or under another
 * prefix) opens as one store that sends `chunks/...` keys there and every other key to the main bucket.
 *
 * Throws `TesseraError` `CONFIG_INVALID` naming the target when it cannot be opened (a bucket name S3
 * rejects, half of a credential pair in `env`).
 *
 * @example
 * ```ts
 * import { openTarget } from "./stores.ts";
 * const store = openTarget({ kind: "directory", directory: "/tmp/tessera-backups" });
 * console.log(store.description); // file:///tmp/tessera-backups
 * ```
 */
export function openTarget(target: TargetConfig, env: Record<string, string | undefined> = {}): BlobStore {
  try {
    if (target.kind === "directory") return new LocalStore(target.directory);
    if (target.kind === "http") return new HttpStore(target.url);
    return openS3(target, env);
  } catch (error) {
    if (error instanceof TesseraError && error.code === "CONFIG_INVALID") throw error;
    const reason = errorMessage(error);
    throw new TesseraError("CONFIG_INVALID", `Cannot open target ${describeTarget(target)}: ${reason}`, {
      cause: error,
    });
  }
}

function openS3(target: S3TargetConfig, env: Record<string, string | undefined>): BlobStore {
  const location: Partial<S3ClientOptions> & { bucket: string } = { bucket: target.bucket };
  if (target.region !== undefined) location.region = target.region;
  if (target.endpoint !== undefined) location.endpoint = target.endpoint;
  if (target.forcePathStyle !== undefined) location.forcePathStyle = target.forcePathStyle;
  const main = new S3Store(s3OptionsFromEnv(env, location), { prefix: target.prefix });
  const chunkBucket = target.chunkBucket ?? target.bucket;
  const chunkPrefix = target.chunkPrefix ?? target.prefix;
  if (chunkBucket === target.bucket && chunkPrefix === target.prefix) return main;
  const chunks = new S3Store(s3OptionsFromEnv(env, { ...location, bucket: chunkBucket }), {
    prefix: chunkPrefix,
  });
  // Chunks and packs in the chunk bucket, manifests and pointers in the other.
  const split = new SplitStore({ prefix: CHUNK_PREFIX, matching: chunks, rest: main });
  return new SplitStore({ prefix: PACKS_PREFIX, matching: chunks, rest: split });
}

/**
 * Names a target for messages and status output, without credentials: `s3://bucket/prefix` with its
 * region, endpoint and chunk bucket when set, a directory's path, or an HTTP store's URL without its query.
 *
 * @example
 * ```ts
 * import { describeTarget } from "./stores.ts";
 * const text = describeTarget({
 *   kind: "s3",
 *   bucket: "manifests",
 *   prefix: "",
 *   region: "us-east-2",
 *   chunkBucket: "chunks",
 * });
 * console.log(text); // s3://manifests/ (region us-east-2; chunks in s3://chunks/)
 * ```
 */
export function describeTarget(target: TargetConfig): string {
  if (target.kind === "directory") return target.directory;
  if (target.kind === "http") return redactUrl(describeUrl(target.url));
  const details: string[] = [];
  if (target.region !== undefined) details.push(`region ${target.region}`);
  if (target.endpoint !== undefined) details.push(`endpoint ${redactUrl(describeUrl(target.endpoint))}`);
  if (target.forcePathStyle !== undefined) {
    details.push(target.forcePathStyle ? "path-style addressing" : "virtual-host addressing");
  }
  const where = details.length > 0 ? ` (${details.join(", ")}` : "";
  const chunkBucket = target.chunkBucket ?? target.bucket;
  const chunkPrefix = target.chunkPrefix ?? target.prefix;
  const chunks = chunkBucket === target.bucket && chunkPrefix === target.prefix
    ? ""
    : `${where ? "; " : " ("}chunks in s3://${chunkBucket}/${chunkPrefix}`;
  return `s3://${target.bucket}/${target.prefix}${where}${chunks}${where || chunks ? ")" : ""}`;
}

/**
 * The local chunk caches a config names, in the order a reader tries them: its `cache` directory (read and
 * filled), then other processes' read-only caches.
 *
 * @example
 * ```ts
 * import { chunkCachesFor } from "./stores.ts";
 * const caches = chunkCachesFor({ cache: { directory: "/tmp/c", numShards: 16, capacity: 1000 }, readOnlyCaches: [] });
 * console.log(caches.map((c) => c.description)); // ["cache directory /tmp/c"]
 * ```
 */
export function chunkCachesFor(config: Pick<TesseraConfig, "cache" | "readOnlyCaches">): ChunkCache[] {
  const caches: ChunkCache[] = [];
  const { cache, readOnlyCaches } = config;
  if (cache) {
    // Cached chunks stay uncompressed: local disk is cheap, and a warm read then costs no zstd work.
    caches.push(
      new DirectoryChunkCache({
        directory: cache.directory,
        numShards: cache.numShards,
        capacity: cache.capacity,
        codec: "none",
      }),
    );
  }
  for (const { directory, numShards } of readOnlyCaches) {
    caches.push(new DirectoryChunkCache({ directory, numShards: Math.max(1, numShards), readOnly: true }));
  }
  return caches;
}

/**
 * The chunk layers a reader goes through: `before` (e.g. a memory cache), the config's local cache
 * directory, other processes' read-only caches, then `primary` and every other store in `stores`.
 *
 * @example Reading chunks through a cache directory
 * ```ts
 * import { chunkSourceFor, openTarget } from "./stores.ts";
 * const store = openTarget({ kind: "directory", directory: "/tmp/tessera-backups" });
 * const config = { targets: [], readOnly: [], readOnlyCaches: [], cache: { directory: "/tmp/c", numShards: 16, capacity: 1000 } };
 * console.log(chunkSourceFor(config, store).description); // cache directory /tmp/c, then file:///tmp/tessera-backups
 * ```
 */
export function chunkSourceFor(
  config: Pick<TesseraConfig, "cache" | "readOnlyCaches">,
  primary: BlobStore,
  stores: readonly BlobStore[] = [],
  before: readonly ChunkCache[] = [],
): ChunkSource {
  return readThrough(primary, {
    caches: [...before, ...chunkCachesFor(config)],
    stores,
    locate: storeLocator,
  });
}
