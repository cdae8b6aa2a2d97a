/**
 * The catalogue below both sides: which databases a store holds, a database's pointer and history, the
 * manifest a pointer or a sequence names (checked), the next free sequence, and which snapshot a reader
 * means when several stores hold a database ({@linkcode resolveSnapshot}: one policy for every reader).
 * The write side and the read side both ask it; nothing else reads a pointer or lists manifests. Web APIs
 * only: it is part of the browser entry point.
 *
 * @module
 */

import { isAbortError, TesseraError } from "../errors.ts";
import { mapLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";
import {
  DEFAULT_HINT,
  listSnapshots,
  type LoadedManifest,
  type LoadOptions,
  loadPointed,
  loadSequence,
  noSnapshot,
  pollPointer,
  readPointer,
  type SnapshotEntry,
  storeList,
} from "./_store_catalog.ts";
import { manifestKey, manifestsPrefix } from "./keys.ts";
import type { Pointer } from "./types.ts";

export {
  hasPointer,
  type HistoryEntry,
  type LatestManifest,
  listDatabases,
  listHistory,
  listManifests,
  listSnapshots,
  type LoadedManifest,
  loadLatest,
  type LoadOptions,
  loadPointed,
  loadSequence,
  type ManifestEntry,
  type PointerPoll,
  pollPointer,
  readPointer,
  type SnapshotEntry,
} from "./_store_catalog.ts";

/** How many manifests without a pointer {@linkcode nextSequence} steps over before it gives up. */
const MAX_ORPHANS = 1000;

/**
 * Loads the newest snapshot of database `name` taken at or before `atMs` (ms since 1970): the highest
 * sequence whose manifest's `createdMs` is at most `atMs`. Throws `TesseraError` `NOT_FOUND` naming the
 * database and its earliest snapshot time when there is none.
 *
 * @example Restoring the state of an hour ago
 * ```ts
 * import { loadAt } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * await loadAt(new MemoryStore(), "app", Date.now() - 3_600_000).catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function loadAt(
  store: BlobStore,
  name: string,
  atMs: number,
  options: LoadOptions = {},
): Promise<LoadedManifest> {
  return (await resolveSnapshot([store], { name, atMs }, options)).loaded;
}

/** Options of {@linkcode nextSequence}. */
export interface NextSequenceOptions extends LoadOptions {
  /** The stores' pointers when the caller has read them already, one per store (`undefined`: none); without
   * them every store's pointer is read. */
  pointers?: readonly (Pointer | undefined)[] | undefined;
  /** A sequence taken elsewhere (a spool's last capture): the result is past it too. @default {0} */
  after?: number | undefined;
}

/**
 * The sequence the next snapshot of database `name` takes: one past every store's pointer (and
 * `options.after`), stepping over any sequence whose manifest a store holds without a pointer naming it (a
 * publish that never reached its pointer left a complete snapshot, kept as history, and its sequence is
 * taken). Throws `TesseraError` `CONFLICT` after 1000 such manifests.
 *
 * @example The first sequence of a new database
 * ```ts
 * import { nextSequence } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * console.log(await nextSequence([new MemoryStore()], "app")); // 1
 * ```
 */
export async function nextSequence(
  stores: readonly BlobStore[],
  name: string,
  options: NextSequenceOptions = {},
): Promise<number> {
  const { signal } = options;
  const pointers = options.pointers ??
    await mapLimit(stores, (store) => readPointer(store, name, { signal }), {
      concurrency: stores.length,
      signal,
    });
  let sequence = 1 + Math.max(0, options.after ?? 0, ...pointers.map((p) => p?.sequence ?? 0));
  for (let skipped = 0; skipped < MAX_ORPHANS; skipped++) {
    const key = manifestKey(name, sequence);
    const heads = await Promise.all(stores.map((s) => s.head(key, { signal })));
    if (heads.every((h) => h.status === "not_found")) return sequence;
    sequence++;
  }
  throw new TesseraError(
    "CONFLICT",
    `Cannot choose a sequence for "${name}": ${MAX_ORPHANS} unpublished manifests lie ahead of its pointer`,
  );
}

/**
 * Which snapshot of database `name` a reader means: the newest (neither `sequence` nor `atMs`), snapshot
 * `sequence` of its history, or the newest taken at or before `atMs` (ms since 1970).
 */
export interface SnapshotSelector {
  name: string;
  sequence?: number | undefined;
  atMs?: number | undefined;
}

/** A store that failed while a snapshot was chosen, and was skipped. */
export interface SkippedStore {
  store: BlobStore;
  error: unknown;
}

/** The snapshot chosen and where it came from. */
export interface FoundSnapshot {
  loaded: LoadedManifest;
  /** The store it was read from (a reader follows its pointer, and reads chunks there first). */
  store: BlobStore;
  /** The pointer that named it, when the newest snapshot was asked for. */
  pointer: Pointer | undefined;
  /** That pointer object's ETag: what a poller's next conditional read sends. */
  etag: string | undefined;
}

/** What {@linkcode findSnapshot} found: the snapshot, or the `NOT_FOUND` error saying no answering store
 * holds it; and the stores that failed. */
export type SnapshotSearch =
  | { found: FoundSnapshot; skipped: SkippedStore[] }
  | { found: undefined; skipped: SkippedStore[]; missing: TesseraError };

/** What {@linkcode resolveSnapshot} chose, and the stores it skipped. */
export interface ResolvedSnapshot extends FoundSnapshot {
  skipped: SkippedStore[];
}

/** Options of {@linkcode findSnapshot} and {@linkcode resolveSnapshot}. */
export interface ResolveOptions extends LoadOptions {
  /** What the `NOT_FOUND` message tells the user to do when no store holds a snapshot of the database.
   * @default {"run `tessera sync` first, or check --hostname/--source-path/--name"} */
  hint?: string | undefined;
}

/**
 * Chooses the snapshot `selector` names across `stores`, by the one policy every reader follows:
 *
 * - the newest: every store's pointer is read, and the highest sequence wins (a store that missed syncs
 *   lags; on a tie the earlier store); when the manifest it names cannot be loaded, that store is skipped
 *   and the next newest pointer is tried;
 * - a sequence: the first store, in order, that holds that sequence's manifest;
 * - a time: every store's history is read, and the highest sequence taken at or before it wins.
 *
 * A store that fails (unreachable, a damaged pointer or manifest, a pointer naming a missing manifest) is
 * skipped and reported in `skipped`. When no store has the snapshot, this throws: the first skipped
 * store's error when any store failed (the snapshot may be there), else `TesseraError` `NOT_FOUND` naming
 * every store asked (with one store, the very error that store gave). Throws `TypeError` without stores,
 * and `RangeError` for an invalid name, sequence or time, or both a sequence and a time.
 *
 * @example Restoring from whichever store is newest
 * ```ts
 * import { resolveSnapshot } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * await resolveSnapshot([new MemoryStore(), new MemoryStore()], { name: "app" })
 *   .catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function resolveSnapshot(
  stores: readonly BlobStore[],
  selector: SnapshotSelector,
  options: ResolveOptions = {},
): Promise<ResolvedSnapshot> {
  const search = await findSnapshot(stores, selector, options);
  if (search.found) return { ...search.found, skipped: search.skipped };
  throw search.skipped[0]?.error ?? search.missing;
}

/**
 * {@linkcode resolveSnapshot}'s policy without its last step: when no store has the snapshot, this returns
 * `found: undefined` (with the `NOT_FOUND` error `resolveSnapshot` would throw) instead of throwing, for a
 * caller to whom "no snapshot anywhere" is an answer (`--restore-if-missing`). Only an abort throws.
 *
 * @example Telling "no snapshot" from "a store failed"
 * ```ts
 * import { findSnapshot } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * const { found, skipped } = await findSnapshot([new MemoryStore()], { name: "app" });
 * console.log(found === undefined, skipped.length); // true 0
 * ```
 */
export async function findSnapshot(
  stores: readonly BlobStore[],
  selector: SnapshotSelector,
  options: ResolveOptions = {},
): Promise<SnapshotSearch> {
  if (stores.length === 0) throw new TypeError("Cannot choose a snapshot: give at least one store");
  const { name, sequence, atMs } = selector;
  // A bad name or sequence throws its RangeError here, not as every store's failure.
  manifestsPrefix(name);
  if (sequence !== undefined) {
    if (atMs !== undefined) {
      throw new RangeError("Cannot choose a snapshot by both a sequence and a time: give one of them");
    }
    manifestKey(name, sequence);
    return await findSequence(stores, name, sequence, options);
  }
  if (atMs !== undefined) {
    if (!Number.isFinite(atMs)) throw new RangeError(`Cannot choose a snapshot at ${atMs}: not a time`);
    return await findAt(stores, name, atMs, options);
  }
  return await findLatest(stores, name, options);
}

type Outcome<T> = { value: T } | { error: unknown };

// Runs `read` on every store at once; a failure (but an abort) is an outcome, not a rejection.
async function askEvery<T>(
  stores: readonly BlobStore[],
  read: (store: BlobStore) => Promise<T>,
  signal: AbortSignal | undefined,
): Promise<Outcome<T>[]> {
  return await mapLimit(stores, async (store) => {
    try {
      return { value: await read(store) };
    } catch (error) {
      rethrowAbort(error, signal);
      return { error };
    }
  }, { concurrency: stores.length, signal });
}

function rethrowAbort(error: unknown, signal: AbortSignal | undefined): void {
  if (isAbortError(error) || signal?.aborted) throw error;
}

async function findLatest(
  stores: readonly BlobStore[],
  name: string,
  options: ResolveOptions,
): Promise<SnapshotSearch> {
  const { signal } = options;
  const skipped: SkippedStore[] = [];
  const pointed: { store: BlobStore; pointer: Pointer; etag: string }[] = [];
  const outcomes = await askEvery(stores, (store) => pollPointer(store, name, { signal }), signal);
  outcomes.forEach((outcome, i) => {
    const store = stores[i] as BlobStore;
    if ("error" in outcome) skipped.push({ store, error: outcome.error });
    else if (outcome.value.status === "ok") pointed.push({ store, ...outcome.value });
  });
  // Array.prototype.sort is stable: among equal pointers the earlier store stays first.
  pointed.sort((a, b) => b.pointer.sequence - a.pointer.sequence);
  for (const { store, pointer, etag } of pointed) {
    try {
      const loaded = await loadPointed(store, name, pointer, { signal });
      return { found: { loaded, store, pointer, etag }, skipped };
    } catch (error) {
      rethrowAbort(error, signal);
      skipped.push({ store, error });
    }
  }
  return { found: undefined, skipped, missing: noSnapshot(name, stores, options.hint ?? DEFAULT_HINT) };
}

async function findSequence(
  stores: readonly BlobStore[],
  name: string,
  sequence: number,
  options: ResolveOptions,
): Promise<SnapshotSearch> {
  const { signal } = options;
  const skipped: SkippedStore[] = [];
  const missing: TesseraError[] = [];
  for (const store of stores) {
    try {
      const loaded = await loadSequence(store, name, sequence, { signal });
      return { found: { loaded, store, pointer: undefined, etag: undefined }, skipped };
    } catch (error) {
      rethrowAbort(error, signal);
      if (error instanceof TesseraError && error.code === "NOT_FOUND") missing.push(error);
      else skipped.push({ store, error });
    }
  }
  const key = manifestKey(name, sequence);
  const none = missing.length === 1 && stores.length === 1 ? missing[0] as TesseraError : new TesseraError(
    "NOT_FOUND",
    `Cannot load snapshot ${sequence} of database "${name}": ${key} is missing from ${
      storeList(stores, "and")
    } (a retention policy may have pruned it)`,
  );
  return { found: undefined, skipped, missing: none };
}

async function findAt(
  stores: readonly BlobStore[],
  name: string,
  atMs: number,
  options: ResolveOptions,
): Promise<SnapshotSearch> {
  const { signal } = options;
  const skipped: SkippedStore[] = [];
  const candidates: { store: BlobStore; entry: SnapshotEntry }[] = [];
  let earliest = Infinity;
  const outcomes = await askEvery(stores, (store) => listSnapshots(store, name, { signal }), signal);
  outcomes.forEach((outcome, i) => {
    const store = stores[i] as BlobStore;
    if ("error" in outcome) {
      skipped.push({ store, error: outcome.error });
      return;
    }
    for (const entry of outcome.value) {
      earliest = Math.min(earliest, entry.createdMs);
      if (entry.createdMs <= atMs) candidates.push({ store, entry });
    }
  });
  candidates.sort((a, b) => b.entry.sequence - a.entry.sequence);
  for (const { store, entry } of candidates) {
    try {
      const loaded = await loadSequence(store, name, entry.sequence, { signal });
      return { found: { loaded, store, pointer: undefined, etag: undefined }, skipped };
    } catch (error) {
      rethrowAbort(error, signal);
      skipped.push({ store, error });
    }
  }
  const missing = earliest === Infinity
    ? noSnapshot(name, stores, options.hint ?? DEFAULT_HINT)
    : new TesseraError(
      "NOT_FOUND",
      `No snapshot of database "${name}" in ${storeList(stores, "or")} was taken at or before ` +
        `${new Date(atMs).toISOString()}: the earliest kept is from ${new Date(earliest).toISOString()}`,
    );
  return { found: undefined, skipped, missing };
}
