/**
 * Rebuilding a database image from a manifest into a file: the image is read by `readImage` (bounded
 * concurrency and memory, every chunk verified, the whole image hashed in order) into a temporary file beside
 * the target, which is renamed into place only once verified. A failure at any point leaves the target as it
 * was.
 *
 * @module
 */

import { createHash, randomBytes } from "node:crypto";
import { writeSync } from "node:fs";
import { type FileHandle, open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { syncDir } from "../files.ts";
import type { ChunkSource } from "../chunk/source.ts";
import type { Manifest } from "../manifest/types.ts";
import { readImage } from "./read_image.ts";

/** Options of {@linkcode restoreImage}. */
export interface RestoreImageOptions {
  /** The snapshot to rebuild. */
  manifest: Manifest;
  /** Where data chunks come from. */
  chunks: ChunkSource;
  /** Where index chunks come from.
   * @default {chunks} */
  indexChunks?: ChunkSource | undefined;
  /** The file to write; replaced whole, only once the image is verified. */
  out: string;
  /** Requests in flight at once, each a run of neighbouring chunks in a pack (up to 2 MiB) or one chunk
   * kept as its own object; at most one run more is held in memory. @default {8} */
  concurrency?: number | undefined;
  /** Cancels the restore; it then rejects with the signal's reason and leaves `out` as it was. */
  signal?: AbortSignal | undefined;
  /** Called as chunks are written and hashed, in order, with the chunks done and the chunks in all. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** What {@linkcode restoreImage} did. */
export interface RestoreResult {
  /** The image's length in bytes. */
  bytes: number;
  /** Data chunks read from the source: zero chunks and chunk 0 are never read, a chunk repeated nearby is
   * read once, and index chunks are not counted. */
  chunksFetched: number;
  /** SHA-256 of the image written, lower-case hex; equal to the manifest's when it holds one. */
  sha256: string;
  /** True when the manifest held the image's SHA-256 and the image matched it; false when the writer did
   * not hash the whole image (an incremental sync), so every chunk was checked against its id instead. */
  imageVerified: boolean;
  /** True when the manifest held an image digest (format 2) and the chunk list matched it. */
  digestVerified: boolean;
  /** Store objects the chunks were read from (packs, and chunks kept as their own object). */
  objects: number;
  /** Requests made of the chunk source for data (each a run of neighbours, or one chunk). */
  requests: number;
}

/**
 * Writes the image a manifest describes to `out`, verified.
 *
 * @example Restoring the newest snapshot of a database
 * ```ts ignore
 * import { loadLatest } from "../manifest/catalog.ts";
 * import { restoreImage } from "./restore.ts";
 * import { StoreChunkSource } from "../chunk/source.ts";
 * import { LocalStore } from "../store/local.ts";
 *
 * const store = new LocalStore("/backups");
 * const { manifest } = await loadLatest(store, "app");
 * const result = await restoreImage({ manifest, chunks: new StoreChunkSource(store), out: "app.db" });
 * console.log(result.sha256);
 * ```
 */
export async function restoreImage(options: RestoreImageOptions): Promise<RestoreResult> {
  const { manifest, chunks, signal, onProgress } = options;
  const concurrency = options.concurrency ?? 8;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Cannot restore: concurrency ${concurrency} is not a positive integer`);
  }
  signal?.throwIfAborted();
  const what = `${manifest.identity.name} seq ${manifest.sequence}`;
  const out = resolve(options.out);
  const temp = join(dirname(out), `.${basename(out)}.tessera-${randomBytes(6).toString("hex")}.tmp`);
  let handle: FileHandle | undefined;
  let created = false;
  let renamed = false;
  try {
    handle = await open(temp, "wx");
    created = true;
    await handle.truncate(manifest.imageLength);
    const file = handle;
    // Settles only once no write runs, so none reaches the file after it is removed.
    const read = await readImage(manifest, chunks, {
      doing: `restore ${what}`,
      indexChunks: options.indexChunks,
      // The file was sized first, so a zero chunk is already a hole that reads as zeros.
      sink: (chunk) => chunk.from === "zero" ? undefined : writeAll(file, chunk.bytes, chunk.offset),
      hasher: () => createHash("sha256"),
      concurrency,
      signal,
      onProgress,
    });
    const sha256 = read.sha256!;
    // A replaced file keeps its permission bits (a database readable only by its service stays so).
    const replaced = await stat(out).catch(() => undefined);
    if (replaced?.isFile()) await handle.chmod(replaced.mode & 0o7777);
    await handle.sync();
    await handle.close();
    handle = undefined;
    signal?.throwIfAborted();
    await rename(temp, out);
    renamed = true;
    await syncDir(dirname(out));
    return {
      bytes: manifest.imageLength,
      chunksFetched: read.fetched,
      sha256,
      imageVerified: read.imageVerified,
      digestVerified: read.digestVerified,
      objects: read.objects,
      requests: read.requests,
    };
  } catch (error) {
    throw signal?.aborted ? signal.reason : error;
  } finally {
    await handle?.close().catch(() => {});
    if (created && !renamed) await unlink(temp).catch(() => {});
  }
}

// A synchronous write: a chunk goes into the page cache in microseconds, far less than the round trip of an
// asynchronous write through the runtime's thread pool (a 256 MiB restore makes 4,096 of them); the file is
// fsynced once at the end.
function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    done += writeSync(handle.fd, bytes, done, bytes.length - done, position + done);
  }
}
