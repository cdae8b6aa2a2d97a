/**
 * `tessera touch`: write again the chunks a database's snapshots reference once the store's copy grows
 * old, so a bucket whose lifecycle rule expires objects some time after they were written never expires a
 * chunk a snapshot still needs (as Verneuil's workers touch every chunk at least once a week).
 *
 * @module
 */

import { decodeChunk } from "../chunk/codec.ts";
import { readPackContents } from "../chunk/pack.ts";
import { TesseraError } from "../errors.ts";
import { listHistory, loadLatest, loadSequence } from "../manifest/catalog.ts";
import { parseChunkKey, parsePackKey } from "../manifest/keys.ts";
import type { Manifest } from "../manifest/types.ts";
import { forEachLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";
import { addManifestReferences, boundedIndexCache } from "./references.ts";

/** The age past which `tessera touch` writes a chunk again, unless told otherwise: one day. */
export const DEFAULT_TOUCH_AGE_MS = 24 * 60 * 60_000;

/** Options of {@linkcode touchChunks}. */
export interface TouchOptions {
  /** Chunks the store wrote longer ago than this are written again. @default {DEFAULT_TOUCH_AGE_MS} */
  olderThanMs?: number | undefined;
  /** Every kept snapshot's chunks, not only the newest's. @default {false} */
  allManifests?: boolean | undefined;
  /** Report what would be written, and write nothing. @default {false} */
  dryRun?: boolean | undefined;
  /** Chunks looked at at once. @default {8} */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** What {@linkcode touchChunks} did. */
export interface TouchReport {
  store: string;
  name: string;
  dryRun: boolean;
  /** Manifests whose chunks were looked at. */
  manifests: number;
  /** Distinct chunk objects they reference. */
  chunks: number;
  /** Chunks written again (in a dry run: that would be). */
  touched: number;
  /** Their stored size. */
  bytes: number;
  /** Written more recently than `olderThanMs`: left alone. */
  fresh: number;
  /** The store reports no modification time: left alone. */
  noTime: number;
  /** Referenced but not in the store (the snapshots that need them cannot be restored). */
  missing: string[];
  /** In the store but not the bytes their id names: left alone, for the user to restore. */
  corrupt: string[];
}

/**
 * Writes again (read, verify against the id, put the same bytes) every chunk that the newest snapshot of
 * database `name` (or, with `allManifests`, every kept snapshot) references and that `store` wrote longer
 * ago than `olderThanMs`. A replicator can call it periodically. Throws `TesseraError` `NOT_FOUND` when the
 * database has no pointer (without `allManifests`; with it, a database without snapshots touches nothing).
 *
 * @example
 * ```ts
 * import { touchChunks } from "./touch.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * await touchChunks(new MemoryStore(), "app").catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function touchChunks(
  store: BlobStore,
  name: string,
  options: TouchOptions = {},
): Promise<TouchReport> {
  const { signal } = options;
  const olderThanMs = options.olderThanMs ?? DEFAULT_TOUCH_AGE_MS;
  if (!Number.isFinite(olderThanMs) || olderThanMs < 0) {
    throw new RangeError(`Cannot touch chunks older than ${olderThanMs} ms: expected a duration ≥ 0`);
  }
  const dryRun = options.dryRun ?? false;
  const keys = new Set<string>();
  const indexCache = boundedIndexCache();
  const manifests = await eachManifest(
    store,
    name,
    options.allManifests ?? false,
    signal,
    async (manifest) => {
      const doing = `touch the chunks of snapshot ${manifest.sequence} of database "${name}"`;
      await addManifestReferences(store, manifest, keys, { doing, indexCache, signal });
    },
  );
  const report: TouchReport = {
    store: store.description,
    name,
    dryRun,
    manifests,
    chunks: keys.size,
    touched: 0,
    bytes: 0,
    fresh: 0,
    noTime: 0,
    missing: [],
    corrupt: [],
  };
  await forEachLimit(keys, async (key) => {
    const head = await store.head(key, { signal });
    if (head.status !== "ok") {
      report.missing.push(key);
      return;
    }
    if (head.lastModified === undefined) {
      report.noTime++;
      return;
    }
    if (Date.now() - head.lastModified.getTime() < olderThanMs) {
      report.fresh++;
      return;
    }
    if (dryRun) {
      report.touched++;
      report.bytes += head.size;
      return;
    }
    const got = await store.get(key, { signal });
    if (got.status !== "ok") {
      report.missing.push(key);
      return;
    }
    try {
      const chunk = parseChunkKey(key);
      if (chunk) await decodeChunk(chunk, got.body);
      else await readPackContents(got.body, parsePackKey(key)!);
    } catch (error) {
      if (!(error instanceof TesseraError)) throw error;
      report.corrupt.push(key);
      return;
    }
    await store.put(key, got.body, { signal });
    report.touched++;
    report.bytes += got.body.length;
  }, { concurrency: options.concurrency, signal });
  report.missing.sort();
  report.corrupt.sort();
  return report;
}

// Calls `fn` with the newest manifest, or each kept one (one at a time: each may hold a MiB inline); returns
// how many.
async function eachManifest(
  store: BlobStore,
  name: string,
  all: boolean,
  signal: AbortSignal | undefined,
  fn: (manifest: Manifest) => Promise<void>,
): Promise<number> {
  if (!all) {
    await fn((await loadLatest(store, name, { signal })).manifest);
    return 1;
  }
  let count = 0;
  for (const entry of await listHistory(store, name, { signal })) {
    let manifest: Manifest;
    try {
      manifest = (await loadSequence(store, name, entry.sequence, { signal })).manifest;
    } catch (error) {
      // Pruned since it was listed: its chunks need no renewing.
      if (!(error instanceof TesseraError && error.code === "NOT_FOUND")) throw error;
      continue;
    }
    await fn(manifest);
    count++;
  }
  return count;
}
