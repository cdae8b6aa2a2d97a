/**
 * Rebuilding a database image from a manifest: chunks fetched in parallel with bounded concurrency and
 * memory, written into a temporary file beside the target, verified chunk by chunk and as a whole, then
 * renamed into place. A failure at any point leaves the target as it was.
 *
 * @module
 */

import { createHash, randomBytes } from "node:crypto";
import { type FileHandle, open, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { toHex } from "../bytes.ts";
import { TesseraError } from "../errors.ts";
import { idsEqual, idToHex, ZERO_ID } from "../chunk/ids.ts";
import type { ChunkSource } from "../chunk/source.ts";
import { manifestChunkIds } from "../manifest/chunk_list.ts";
import type { ChunkId, Manifest } from "../manifest/types.ts";

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
  /** Chunks fetched at once; at most twice as many are held in memory.
   * @default {8} */
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
}

/**
 * Writes the image a manifest describes to `out`, verified.
 *
 * @example Restoring the newest snapshot of a database
 * ```ts ignore
 * import { loadLatest } from "./manifest_source.ts";
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
  const ids = await manifestChunkIds(manifest, options.indexChunks ?? chunks, {
    doing: `restore ${what}`,
    signal,
  });
  const total = ids.length + (manifest.imageLength > 0 ? 1 : 0);

  const out = resolve(options.out);
  const temp = join(dirname(out), `.${basename(out)}.tessera-${randomBytes(6).toString("hex")}.tmp`);
  // Stops the fetches still running when one fails, so none writes to the file after it is removed.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let handle: FileHandle | undefined;
  let created = false;
  let renamed = false;
  try {
    signal?.throwIfAborted();
    handle = await open(temp, "wx");
    created = true;
    await handle.truncate(manifest.imageLength);
    const copier = new ChunkCopier(handle, ids, { manifest, chunks, what, concurrency, stop });
    const sha256 = await copier.run(onProgress ? (done) => onProgress(done, total) : undefined);
    const expected = toHex(manifest.imageSha256);
    const imageVerified = manifest.imageSha256.some((b) => b !== 0);
    if (imageVerified && sha256 !== expected) {
      throw new TesseraError(
        "CHECKSUM_MISMATCH",
        `Cannot restore ${what}: the rebuilt image's SHA-256 is ${sha256}, but the manifest says ${expected}`,
      );
    }
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
    return { bytes: manifest.imageLength, chunksFetched: copier.fetched, sha256, imageVerified };
  } catch (error) {
    stop.abort(error);
    throw signal?.aborted ? signal.reason : error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    await handle?.close().catch(() => {});
    if (created && !renamed) await unlink(temp).catch(() => {});
  }
}

interface CopierOptions {
  manifest: Manifest;
  chunks: ChunkSource;
  what: string;
  concurrency: number;
  /** Aborted when the restore fails or is cancelled; stops the fetches still running. */
  stop: AbortController;
}

// Chunk i (1-based, chunk 0 is in the manifest) is fetched and written at its offset by a task; tasks run
// `concurrency` at a time, and at most `2 * concurrency` chunks are fetched ahead of the hash, which must
// read them in order.
class ChunkCopier {
  fetched = 0;
  readonly #handle: FileHandle;
  readonly #ids: ChunkId[];
  readonly #o: CopierOptions;
  readonly #tasks = new Map<number, Promise<Uint8Array>>();
  readonly #byId = new Map<string, Promise<Uint8Array | undefined>>();
  readonly #zeros: Uint8Array;
  #nextStart = 1;
  #consumed = 0;
  #running = 0;

  constructor(handle: FileHandle, ids: ChunkId[], options: CopierOptions) {
    this.#handle = handle;
    this.#ids = ids;
    this.#o = options;
    this.#zeros = new Uint8Array(options.manifest.chunkSize);
  }

  async run(progress: ((done: number) => void) | undefined): Promise<string> {
    const { manifest } = this.#o;
    const hash = createHash("sha256");
    if (manifest.chunk0.length > 0) {
      await writeAll(this.#handle, manifest.chunk0, 0);
      hash.update(manifest.chunk0);
      progress?.(1);
    }
    try {
      for (let i = 1; i <= this.#ids.length; i++) {
        this.#pump();
        const bytes = await this.#tasks.get(i)!;
        this.#tasks.delete(i);
        hash.update(bytes);
        this.#consumed = i;
        progress?.(i + 1);
      }
    } catch (error) {
      this.#o.stop.abort(error);
      throw error;
    } finally {
      // Wait for the tasks still running (they stop on the abort signal) before the file is closed.
      await Promise.allSettled(this.#tasks.values());
    }
    return hash.digest("hex");
  }

  #pump(): void {
    const window = 2 * this.#o.concurrency;
    while (
      this.#nextStart <= this.#ids.length &&
      this.#running < this.#o.concurrency &&
      this.#nextStart - this.#consumed <= window &&
      !this.#o.stop.signal.aborted
    ) {
      const i = this.#nextStart++;
      this.#running++;
      const task = this.#copy(i).finally(() => {
        this.#running--;
        this.#pump();
      });
      // Failures are reported in order by run(); this only keeps an early one from being unhandled.
      task.catch(() => {});
      this.#tasks.set(i, task);
    }
  }

  async #copy(i: number): Promise<Uint8Array> {
    const { manifest, stop } = this.#o;
    const id = this.#ids[i - 1]!;
    const offset = i * manifest.chunkSize;
    const length = Math.min(manifest.chunkSize, manifest.imageLength - offset);
    // The file was sized first, so a zero chunk is already a hole that reads as zeros.
    if (idsEqual(id, ZERO_ID)) return this.#zeros.subarray(0, length);
    const bytes = await this.#fetch(id, i);
    if (bytes.length !== length) {
      throw new TesseraError(
        "CORRUPT_MANIFEST",
        `Cannot restore ${this.#o.what}: chunk ${idToHex(id)} (chunk #${i}) holds ${bytes.length} bytes, ` +
          `but the manifest places ${length} bytes there`,
      );
    }
    stop.signal.throwIfAborted();
    await writeAll(this.#handle, bytes, offset);
    return bytes;
  }

  // A chunk repeated within the window is fetched once.
  async #fetch(id: ChunkId, i: number): Promise<Uint8Array> {
    const { chunks, stop, what } = this.#o;
    const hex = idToHex(id);
    let pending = this.#byId.get(hex);
    if (pending === undefined) {
      this.fetched++;
      pending = chunks.get(id, { signal: stop.signal });
      this.#byId.set(hex, pending);
      pending.then(() => this.#byId.delete(hex), () => this.#byId.delete(hex));
    }
    const bytes = await pending;
    if (bytes === undefined) {
      throw new TesseraError(
        "NOT_FOUND",
        `Cannot restore ${what}: chunk ${hex} (chunk #${i}) is missing from ${chunks.description}`,
      );
    }
    return bytes;
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

async function syncDir(path: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "r");
    await handle.sync();
  } catch {
    // Some filesystems cannot sync a directory; the rename itself is still atomic.
  } finally {
    await handle?.close().catch(() => {});
  }
}
