/**
 * `sync`: publish one consistent snapshot of a live database to every writable store. A sync is the two
 * steps every write takes: capture (`capture.ts`: read what changed into the sync's spool while the source
 * is held) and then publish to each store (`publish.ts`: the chunks it lacks, the manifest, the pointer).
 * The capture record left in the spool lets the next sync skip a no-op and read only what changed.
 *
 * @module
 */

import { mkdtemp, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { tmpdir } from "node:os";
import { toHex } from "../bytes.ts";
import { ZERO_HEX } from "../chunk/ids.ts";
import { errorMessage, TesseraError } from "../errors.ts";
import { nextSequence } from "../manifest/catalog.ts";
import type { Pointer } from "../manifest/types.ts";
import { manifestKey } from "../manifest/keys.ts";
import { checkChosenName, deriveName } from "../manifest/naming.ts";
import type { BlobStore } from "../store/types.ts";
import { captureImage } from "./capture.ts";
import { refuseIfLeased } from "./lease.ts";
import { PublishTarget, SpoolIncompleteError } from "./publish.ts";
import { defaultSpoolDir, Spool } from "./spool.ts";

/** Options of {@linkcode syncDatabase}. */
export interface SyncOptions {
  /** Writable stores; every one receives the snapshot. */
  stores: BlobStore[];
  /** The host name that, with the absolute path, names the database. */
  hostname: string;
  /** A chosen name instead of the derived one. */
  name?: string | undefined;
  /** Chunk size in bytes, a power of two from 4 KiB to 1 MiB. @default {65536} */
  chunkSize?: number | undefined;
  /** Where the record of the last sync lives. @default {`<tmpdir>/tessera-spool-<uid>`} */
  spoolDir?: string | undefined;
  /** Read and hash the whole database even when the record proves what changed, and ask each store about
   * every object its pointer's snapshot keeps data in (one HEAD per pack): what it lost is written again. */
  full?: boolean | undefined;
  /** Pack uploads in flight at once, per store. @default {3} */
  concurrency?: number | undefined;
  /** Who publishes, recorded in the pointer. @default {""} */
  writer?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Told when this sync waits for another sync of the same database (in another process) to finish. */
  onWait?: ((message: string) => void) | undefined;
  /** Called as chunks are read: bytes read so far and in all. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** What a sync did. */
export interface SyncReport {
  name: string;
  sequence: number;
  /** Nothing changed since the last sync: nothing was uploaded. */
  noop: boolean;
  imageLength: number;
  /** SHA-256 of the image when it was read whole, else null. */
  imageSha256: string | null;
  /** Chunks of the image: in all, read from the source, written (new to the stores), skipped (the stores
   * had them), zero (never stored), and moved (repacked out of sparse or scattered objects). */
  chunks: { total: number; read: number; uploaded: number; skipped: number; zero: number; moved: number };
  /** Pack objects written, over every store. */
  packs: number;
  bytes: { read: number; data: number; manifest: number };
  manifestKey: string;
  /** Things that went wrong without failing the sync, such as an unwritable spool directory. */
  warnings: string[];
}

/** How long a sync waits for another process's sync of the same database to finish. */
const SYNC_WAIT_MS = 10 * 60 * 1000;

/**
 * Publishes a snapshot of the database at `path`. A sync of the same database running in another process is
 * waited for (ten minutes at most), so overlapping runs (a cron job slower than its period) queue up.
 *
 * @example
 * ```ts
 * import { LocalStore } from "../store/local.ts";
 * import { syncDatabase } from "./sync.ts";
 * const report = await syncDatabase("app.db", { stores: [new LocalStore("backups")], hostname: "db1" });
 * console.log(report.name, report.sequence, report.chunks.uploaded);
 * ```
 */
export async function syncDatabase(path: string, options: SyncOptions): Promise<SyncReport> {
  const { stores, signal } = options;
  if (stores.length === 0) throw new TypeError("Cannot sync: give at least one store");
  for (const store of stores) {
    if (!store.capabilities.write) {
      throw new TesseraError("READONLY", `Cannot sync to ${store.description}: the store is read-only`);
    }
  }
  const file = resolve(path);
  let name: string;
  if (options.name !== undefined) {
    checkChosenName(options.name);
    name = options.name;
  } else {
    name = await deriveName(options.hostname, file);
  }
  const writer = options.writer ?? "";
  // A running replicator owns the database's pointer: a one-off sync would interleave with it.
  const me = { writer, hostname: options.hostname, pid: process.pid, path: file };
  await Promise.all(stores.map((store) => refuseIfLeased(store, name, me, signal)));

  const warnings: string[] = [];
  const spoolDir = options.spoolDir ?? defaultSpoolDir();
  const { spool, release } = await openSyncSpool(spoolDir, name, file, warnings, options);
  try {
    const targets = stores.map((store) =>
      new PublishTarget(store, name, writer, {
        role: "sync",
        concurrency: options.concurrency,
      })
    );
    let report: SyncReport | undefined;
    for (let attempt = 1; !report; attempt++) {
      try {
        report = await captureAndPublish(file, name, spool, targets, options, warnings);
      } catch (error) {
        // A chunk the record said every store holds is in neither the spool nor a store (something
        // deleted it): forget the record and sync once more, reading and checking everything.
        if (!(error instanceof SpoolIncompleteError) || attempt >= 2) throw error;
        await spool.setCapture(undefined);
      }
    }
    return report;
  } finally {
    await release();
  }
}

async function captureAndPublish(
  file: string,
  name: string,
  spool: Spool,
  targets: PublishTarget[],
  options: SyncOptions,
  warnings: string[],
): Promise<SyncReport> {
  const { stores, signal } = options;
  // Images a sync captured and never published (it was stopped): the stores have not seen them.
  for (const image of spool.pending()) await spool.drop(image.sequence);
  const record = spool.capture;
  // Each store's pointer manifest says what the store holds. The record proves what changed only while
  // every pointer still names its image's manifest.
  await Promise.all(targets.map((target) => target.init(signal)));
  const trusted = record?.manifestSha256 !== undefined &&
    targets.every((t) =>
      t.pointer !== undefined && toHex(t.pointer.manifestSha256) === record.manifestSha256
    );
  // Otherwise it is forgotten: the capture reads everything, the sequence comes from the stores alone, and
  // each store is asked about the objects its pointer's manifest relies on (one request per object).
  if (record && !trusted) await spool.setCapture(undefined);
  if (!trusted || options.full) await Promise.all(targets.map((target) => target.checkPresent(signal)));
  const captured = await captureImage(file, spool, {
    chunkSize: options.chunkSize ?? 65536,
    hostname: options.name !== undefined ? "" : options.hostname,
    nextSequence: await nextSequence(stores, name, { pointers: targets.map((t) => t.pointer), signal }),
    full: options.full,
    hasSnapshots: targets.some((t) => t.pointer !== undefined),
    signal,
    onProgress: options.onProgress,
  });
  const chunks = { total: 0, read: captured.read, uploaded: 0, skipped: 0, zero: 0, moved: 0 };
  let packs = 0;
  const bytes = { read: captured.bytesRead, data: 0, manifest: 0 };
  const image = captured.image;
  const ids = image?.ids ?? spool.capture?.ids ?? [];
  chunks.total = ids.length + 1;
  chunks.zero = ids.filter((id) => id === ZERO_HEX).length;
  chunks.skipped = Math.max(0, chunks.total - 1 - chunks.zero);
  const sequence = image?.sequence ?? spool.capture?.sequence ?? 0;
  const report: SyncReport = {
    name,
    sequence,
    noop: image === null,
    imageLength: image?.imageLength ?? spool.capture?.imageLength ?? 0,
    imageSha256: image?.imageSha256 ?? null,
    chunks,
    packs: 0,
    bytes,
    manifestKey: manifestKey(name, sequence),
    warnings,
  };
  if (!image) return report;
  const uploaded = new Set<string>();
  const ours: Pointer[] = [];
  let manifestSha256 = "";
  // Publication is recorded per target, by position: two stores may share a description.
  const keys = targets.map((t, i) => `${i}:${t.store.description}`);
  for (const [i, target] of targets.entries()) {
    const sent = await target.publish(image, spool, signal, ours);
    for (const hex of sent.uploadedIds) uploaded.add(hex);
    packs += sent.packs;
    chunks.moved = Math.max(chunks.moved, sent.moved);
    bytes.data += sent.dataBytes;
    bytes.manifest += sent.manifestBytes;
    manifestSha256 = sent.manifestSha256;
    ours.push(sent.pointer);
    await spool.markPublished(image.sequence, keys[i] as string, keys);
  }
  chunks.uploaded = uploaded.size;
  report.packs = packs;
  chunks.skipped = Math.max(0, chunks.total - 1 - chunks.uploaded - chunks.zero);
  const published = spool.capture;
  if (published && published.sequence === image.sequence) {
    try {
      await spool.setCapture({ ...published, manifestSha256 });
    } catch (error) {
      // The snapshot is published; without the record the next sync only reads more.
      warnings.push(`Cannot save the sync record in "${spool.dir}": ${errorMessage(error)}`);
    }
  }
  return report;
}

// The sync's spool, claimed for this process; a sync of the same database running in another process is
// waited for (up to SYNC_WAIT_MS), then this one reads what it left and publishes what changed since. When
// the spool directory cannot be written, a temporary one serves this sync and is removed after it: the
// snapshot is still published, the next sync reads more.
async function openSyncSpool(
  spoolDir: string,
  name: string,
  file: string,
  warnings: string[],
  options: Pick<SyncOptions, "signal" | "onWait">,
): Promise<{ spool: Spool; release: () => Promise<void> }> {
  const { signal } = options;
  let claimed: { spool: Spool; release: () => Promise<void> };
  try {
    claimed = await Spool.claim(spoolDir, name, "sync", file, {
      waitMs: SYNC_WAIT_MS,
      signal,
      onWait: options.onWait,
    });
  } catch (error) {
    if (error instanceof TesseraError && error.code === "LEASE_HELD") throw error;
    if (signal?.aborted) throw error;
    warnings.push(`Cannot save the sync record in "${spoolDir}": ${errorMessage(error)}`);
    const temp = await mkdtemp(join(tmpdir(), "tessera-sync-"));
    try {
      claimed = await Spool.claim(temp, name, "sync", file);
    } catch (inner) {
      await rm(temp, { recursive: true, force: true });
      throw inner;
    }
    const { spool, release } = claimed;
    return {
      spool,
      release: async () => {
        await release();
        await rm(temp, { recursive: true, force: true });
      },
    };
  }
  return claimed;
}
