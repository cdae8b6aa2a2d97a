/**
 * The rule that lets `tessera gc` run while writers sync. A writer that finds a chunk already in a store
 * relies on it only when the store wrote it recently; an older copy is written again, which renews its
 * time. The collector deletes only unreferenced chunks older than its grace period. So a chunk a writer
 * decided to rely on stays at least `grace - CHUNK_REUSE_WINDOW_MS` after that decision: the time the writer
 * has to publish the manifest that references it.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { sleep } from "../net/backoff.ts";
import { forEachLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";

/** A writer relies on an existing chunk only when the store wrote it less than this long ago. */
export const CHUNK_REUSE_WINDOW_MS = 15 * 60_000;

/** How old an unreferenced chunk must be before `tessera gc` deletes it, unless told otherwise. */
export const DEFAULT_GC_GRACE_MS = 6 * 60 * 60_000;

/** The shortest grace period `tessera gc` accepts: a writer then still has 15 minutes to publish. */
export const MIN_GC_GRACE_MS = 2 * CHUNK_REUSE_WINDOW_MS;

/**
 * Whether a writer may rely on an object the store reports as written at `lastModified` instead of writing
 * it again. A store that reports no time is trusted (it cannot be collected by age either).
 */
export function reusable(lastModified: Date | undefined, nowMs: number = Date.now()): boolean {
  if (lastModified === undefined) return true;
  return nowMs - lastModified.getTime() < CHUNK_REUSE_WINDOW_MS;
}

/**
 * `tessera gc` issues the DELETE of a chunk at most this long after the HEAD that showed it old enough;
 * later, it looks again. A writer that replaced an old copy re-checks it {@linkcode REVERIFY_AFTER_MS}
 * later, so no DELETE decided on the old copy can land after that re-check.
 */
export const GC_DELETE_WINDOW_MS = 2000;

/**
 * How long after writing over an old copy of a chunk a writer checks that it is still there, before it
 * publishes a manifest that references it. Longer than {@linkcode GC_DELETE_WINDOW_MS}, with a margin for
 * a DELETE still in flight.
 */
export const REVERIFY_AFTER_MS = 2500;

/** How many times {@linkcode ChunkUploader.settle} writes a chunk again before it gives up. */
const MAX_SETTLE_ROUNDS = 5;

/** Options of the calls of {@linkcode ChunkUploader}. */
export interface ChunkUploaderCallOptions {
  signal?: AbortSignal | undefined;
}

interface Renewal {
  store: BlobStore;
  key: string;
  encoded: () => Uint8Array | Promise<Uint8Array>;
  /** `performance.now()` when the PUT returned. */
  putAt: number;
}

/**
 * How a writer puts chunks into a store that `tessera gc` may be collecting at the same time: it relies
 * on a chunk the store already holds only when the copy is recent ({@linkcode reusable}), and writes an
 * old copy again. A collector that saw the old copy may still delete it just after it was written, so
 * {@linkcode ChunkUploader.settle} checks those chunks again once no such delete can still arrive, and
 * writes back any that vanished. Call `settle()` after the last `ensure()` and before publishing the
 * manifest.
 *
 * @example
 * ```ts
 * import { ChunkUploader } from "./reuse.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * const store = new MemoryStore();
 * const uploader = new ChunkUploader();
 * console.log(await uploader.ensure(store, "chunks/ab/x", () => new Uint8Array(3))); // 3: written
 * console.log(await uploader.ensure(store, "chunks/ab/x", () => new Uint8Array(3))); // 0: a recent copy
 * await uploader.settle();
 * ```
 */
export class ChunkUploader {
  readonly #renewed: Renewal[] = [];

  /** Chunks written over an old copy and not yet checked again by {@linkcode ChunkUploader.settle}. */
  get unsettled(): number {
    return this.#renewed.length;
  }

  /**
   * Makes sure `store` holds `key`: skips it when the store wrote it recently, else writes the bytes
   * `encoded()` returns (called only then, and again by `settle()` if the copy vanishes, so it should not
   * pin large buffers). Returns the bytes written, 0 when skipped.
   */
  async ensure(
    store: BlobStore,
    key: string,
    encoded: () => Uint8Array | Promise<Uint8Array>,
    options: ChunkUploaderCallOptions = {},
  ): Promise<number> {
    const { signal } = options;
    const head = await store.head(key, { signal });
    if (head.status === "ok" && reusable(head.lastModified)) return 0;
    const body = await encoded();
    await store.put(key, body, { signal });
    if (head.status === "ok") this.#renewed.push({ store, key, encoded, putAt: performance.now() });
    return body.length;
  }

  /**
   * Waits until {@linkcode REVERIFY_AFTER_MS} have passed since each write over an old copy, checks each
   * such chunk is still there, and writes back (then checks again) any that a collector deleted. Returns
   * the bytes written back. Throws `TesseraError` `CONFLICT` when a chunk keeps vanishing.
   */
  async settle(options: ChunkUploaderCallOptions = {}): Promise<number> {
    const { signal } = options;
    let bytes = 0;
    for (let round = 0; this.#renewed.length > 0; round++) {
      const batch = this.#renewed.splice(0);
      if (round >= MAX_SETTLE_ROUNDS) {
        const { key, store } = batch[0] as Renewal;
        throw new TesseraError(
          "CONFLICT",
          `Cannot keep chunk ${key} in ${store.description}: it was deleted right after being written ` +
            `${MAX_SETTLE_ROUNDS} times; is something other than \`tessera gc\` deleting chunks?`,
        );
      }
      const last = Math.max(...batch.map((r) => r.putAt));
      await sleep(Math.max(0, last + REVERIFY_AFTER_MS - performance.now()), signal);
      await forEachLimit(batch, async (renewal) => {
        const head = await renewal.store.head(renewal.key, { signal });
        if (head.status === "ok") return;
        const body = await renewal.encoded();
        await renewal.store.put(renewal.key, body, { signal });
        bytes += body.length;
        this.#renewed.push({ ...renewal, putAt: performance.now() });
      }, { concurrency: 8, signal });
    }
    return bytes;
  }
}
