/**
 * `tessera gc`: delete the chunk objects no manifest in a store references, once they are older than a
 * grace period, without ever deleting a chunk a sync running at the same time relies on. The rule that
 * makes it safe is in `write/reuse.ts`; `docs/HISTORY.md` gives the argument.
 *
 * @module
 */

import { CHUNKS_PREFIX, PACKS_PREFIX, parseChunkKey, parsePackKey } from "../manifest/keys.ts";
import type { BlobStore } from "../store/types.ts";
import { forEachLimit } from "../pool.ts";
import { boundedIndexCache, referencedChunks } from "./references.ts";
import {
  CHUNK_REUSE_WINDOW_MS,
  DEFAULT_GC_GRACE_MS,
  GC_DELETE_WINDOW_MS,
  MIN_GC_GRACE_MS,
} from "../write/reuse.ts";
import { formatDuration } from "./duration.ts";

/** Options of {@linkcode collectGarbage}. */
export interface CollectGarbageOptions {
  /** Only unreferenced chunks the store wrote longer ago than this are deleted; at least
   * {@linkcode MIN_GC_GRACE_MS}. @default {DEFAULT_GC_GRACE_MS} */
  graceMs?: number | undefined;
  /** Report what would be deleted, and delete nothing. @default {false} */
  dryRun?: boolean | undefined;
  /** Chunks looked at and deleted at once. @default {8} */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** One chunk deleted (or, in a dry run, that would be). */
export interface CollectedChunk {
  key: string;
  size: number;
  lastModified: string;
}

/** What {@linkcode collectGarbage} did. */
export interface GarbageReport {
  store: string;
  dryRun: boolean;
  graceMs: number;
  databases: number;
  manifests: number;
  chunks: {
    /** Chunk objects and packs listed. */
    listed: number;
    /** Of those listed, packs. */
    packs: number;
    /** Listed and referenced by some manifest. */
    referenced: number;
    /** Referenced by some manifest but not in the store: the store is damaged. */
    missing: number;
  };
  /** Deleted chunks (in a dry run: those that would be deleted). */
  deleted: { count: number; bytes: number; chunks: CollectedChunk[] };
  /** Unreferenced chunks left in place, by reason. */
  kept: {
    /** Written within the grace period, or rewritten by a sync since they were listed. */
    young: number;
    /** The store reports no modification time, so their age is unknown: never deleted. */
    noTime: number;
    /** Gone before gc came to them. */
    gone: number;
    /** Their DELETE could not go out within GC_DELETE_WINDOW_MS of the HEAD, five times: a slow store. */
    slow: number;
  };
  /** Keys under `chunks/` that are not chunk keys: never deleted. */
  foreign: string[];
}

/**
 * Deletes from `store` the chunk objects that no manifest of any database references and that the store
 * wrote longer ago than `graceMs`. Each is looked at (HEAD) right before its DELETE, and the DELETE goes
 * out within {@linkcode GC_DELETE_WINDOW_MS} of that look or not at all, so a writer that renews the chunk
 * meanwhile keeps it (see `ChunkUploader`). Throws `RangeError` for a grace under
 * {@linkcode MIN_GC_GRACE_MS}, and `TesseraError` when a manifest cannot be read.
 *
 * @example A dry run
 * ```ts
 * import { collectGarbage } from "./gc.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * const report = await collectGarbage(new MemoryStore(), { dryRun: true });
 * console.log(report.deleted.count); // 0
 * ```
 */
export async function collectGarbage(
  store: BlobStore,
  options: CollectGarbageOptions = {},
): Promise<GarbageReport> {
  const { signal } = options;
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const dryRun = options.dryRun ?? false;
  checkGrace(graceMs);
  const indexCache = boundedIndexCache();
  let refs = await referencedChunks(store, { signal, indexCache });
  let listedAt = performance.now();
  const report: GarbageReport = {
    store: store.description,
    dryRun,
    graceMs,
    databases: refs.databases,
    manifests: refs.manifests,
    chunks: { listed: 0, packs: 0, referenced: 0, missing: 0 },
    deleted: { count: 0, bytes: 0, chunks: [] },
    kept: { young: 0, noTime: 0, gone: 0, slow: 0 },
    foreign: [],
  };
  const seen = new Set<string>();
  const candidates: { key: string }[] = [];
  for (const [prefix, parse] of [[CHUNKS_PREFIX, parseChunkKey], [PACKS_PREFIX, parsePackKey]] as const) {
    for await (const item of store.list(prefix, { signal })) {
      if (item.type !== "object") continue;
      if (parse(item.key) === undefined) {
        report.foreign.push(item.key);
        continue;
      }
      report.chunks.listed++;
      if (prefix === PACKS_PREFIX) report.chunks.packs++;
      seen.add(item.key);
      if (refs.keys.has(item.key)) report.chunks.referenced++;
      else if (item.lastModified === undefined) report.kept.noTime++;
      else if (Date.now() - item.lastModified.getTime() <= graceMs) report.kept.young++;
      else candidates.push({ key: item.key });
    }
  }
  for (const key of refs.keys) if (!seen.has(key)) report.chunks.missing++;

  // The references are listed again when they grow older than this: a manifest published after they were
  // listed relies only on chunks written (or found recent) by its sync, and those stay young for at least
  // graceMs - CHUNK_REUSE_WINDOW_MS after that sync decided; half goes to the sync, half to gc.
  const refreshAfterMs = (graceMs - CHUNK_REUSE_WINDOW_MS) / 2;
  let refreshing: Promise<void> | undefined;
  const refresh = async () => {
    const again = await referencedChunks(store, { signal, indexCache });
    for (const key of again.keys) refs.keys.add(key);
    refs = { ...again, keys: refs.keys };
    listedAt = performance.now();
  };

  await forEachLimit(candidates, async ({ key }) => {
    if (performance.now() - listedAt > refreshAfterMs) {
      refreshing ??= refresh().finally(() => (refreshing = undefined));
      await refreshing;
    }
    if (refs.keys.has(key)) {
      report.chunks.referenced++;
      return;
    }
    const outcome = dryRun
      ? await lookOnce(store, key, graceMs, signal)
      : await deleteIfStillOld(store, key, graceMs, signal);
    if (outcome.kind === "deleted") {
      report.deleted.count++;
      report.deleted.bytes += outcome.size;
      report.deleted.chunks.push({ key, size: outcome.size, lastModified: outcome.lastModified });
    } else report.kept[outcome.kind]++;
  }, { concurrency: options.concurrency, signal });
  report.deleted.chunks.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return report;
}

/** Throws `RangeError` unless `graceMs` is at least {@linkcode MIN_GC_GRACE_MS}. */
export function checkGrace(graceMs: number): void {
  if (!Number.isFinite(graceMs) || graceMs < MIN_GC_GRACE_MS) {
    throw new RangeError(
      `Cannot collect garbage with a grace period of ${formatDuration(graceMs)}: the shortest is ` +
        `${
          formatDuration(MIN_GC_GRACE_MS)
        }, so that a sync in flight has time to publish the manifest that ` +
        "references the chunks it found",
    );
  }
}

type Outcome =
  | { kind: "deleted"; size: number; lastModified: string }
  | { kind: "young" | "noTime" | "gone" | "slow" };

/** How many times a chunk is looked at again when its DELETE could not go out in time. */
const MAX_LOOKS = 5;

async function lookOnce(
  store: BlobStore,
  key: string,
  graceMs: number,
  signal: AbortSignal | undefined,
): Promise<Outcome> {
  const head = await store.head(key, { signal });
  if (head.status !== "ok") return { kind: "gone" };
  if (head.lastModified === undefined) return { kind: "noTime" };
  if (Date.now() - head.lastModified.getTime() <= graceMs) return { kind: "young" };
  return { kind: "deleted", size: head.size, lastModified: head.lastModified.toISOString() };
}

// A writer that finds an old copy writes it again and checks it REVERIFY_AFTER_MS later: a DELETE decided
// on the old copy must go out within GC_DELETE_WINDOW_MS of the HEAD that saw it, and no retry of it may
// go out later (the signal ends the retries), else it could remove the renewed copy after that check.
async function deleteIfStillOld(
  store: BlobStore,
  key: string,
  graceMs: number,
  signal: AbortSignal | undefined,
): Promise<Outcome> {
  for (let look = 0; look < MAX_LOOKS; look++) {
    const lookedAt = performance.now();
    const outcome = await lookOnce(store, key, graceMs, signal);
    if (outcome.kind !== "deleted") return outcome;
    const left = GC_DELETE_WINDOW_MS - (performance.now() - lookedAt);
    if (left <= 0) continue;
    const window = AbortSignal.timeout(left);
    try {
      await store.delete(key, { signal: signal ? AbortSignal.any([signal, window]) : window });
      return outcome;
    } catch (error) {
      signal?.throwIfAborted();
      if (!window.aborted) throw error;
    }
  }
  return { kind: "slow" };
}
