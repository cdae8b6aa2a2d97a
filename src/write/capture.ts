/**
 * Capturing, the first step of every write: copy one consistent image of a live database into the spool.
 * `tessera sync` captures once and publishes; the replicator captures on every change and publishes from
 * the spool as stores allow. Only local work happens while
 * the source's read transaction is open (reading pages, hashing them, writing changed chunks to local disk),
 * so a rollback-journal writer waits no longer than that copy, and a WAL writer not at all. Uploading
 * happens later, from the spool.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { encodeChunk } from "../chunk/codec.ts";
import { TesseraError } from "../errors.ts";
import { chunkIds, idToHex, isZeroChunk, ZERO_HEX } from "../chunk/ids.ts";
import { sameEvidence, type SourceReader, type SourceSnapshot, withSourceSnapshot } from "./source.ts";
import { type CaptureRecord, encodeChunk0, type PendingImage, type Spool } from "./spool.ts";

/** Options of {@linkcode captureImage}. */
export interface CaptureOptions {
  chunkSize: number;
  /** The host name the manifest's identity records ("" for a chosen name). */
  hostname: string;
  /** The sequence the image gets, unless the spool's record is past it already. */
  nextSequence: number;
  /** Read every chunk and spool every one the spool lacks, whatever the record says. */
  full?: boolean | undefined;
  /** Make an image even when the source has not changed since the last capture. */
  force?: boolean | undefined;
  signal?: AbortSignal | undefined;
  busyTimeoutMs?: number | undefined;
  /** A connection kept for capture after capture (see SourceReader); else one is opened for this one. */
  reader?: SourceReader | undefined;
  /**
   * The stores hold snapshots of this database already: an empty source (0 pages) is refused even when the
   * spool remembers no capture.
   */
  hasSnapshots?: boolean | undefined;
  /** Called as chunks are read: bytes read so far and bytes to read in all. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** What a capture did. */
export interface CaptureResult {
  /** The image captured, or null when the source had not changed since the last capture. */
  image: PendingImage | null;
  /** Chunks read from the source, and chunk files written to the spool. */
  read: number;
  spooled: number;
  /** Bytes read from the source. */
  bytesRead: number;
  /** Milliseconds the source's read transaction was open. */
  heldMs: number;
}

const READ_BATCH_BYTES = 4 * 1024 * 1024;

/** Captures the database at `path` into `spool`, as the next pending image. */
export async function captureImage(
  path: string,
  spool: Spool,
  options: CaptureOptions,
): Promise<CaptureResult> {
  let heldSince = 0;
  let heldMs = 0;
  const fresh = new Map<string, Uint8Array>();
  try {
    const take = async (snap: SourceSnapshot) => {
      heldSince = performance.now();
      return await copy(snap, spool, options, fresh);
    };
    const copied = options.reader
      ? await options.reader.snapshot(take, options.signal)
      : await withSourceSnapshot(path, take, {
        busyTimeoutMs: options.busyTimeoutMs,
        signal: options.signal,
      });
    heldMs = performance.now() - heldSince;
    if (!copied) return { image: null, read: 0, spooled: 0, bytesRead: 0, heldMs };
    const { read, bytesRead } = copied;
    if (!copied.image) {
      // The same content under new evidence: remember the evidence, so the next capture compares with it.
      await spool.setCapture(copied.record);
      return { image: null, read, spooled: 0, bytesRead, heldMs };
    }
    // The source is released: compress and spool what was kept in memory, then record the image.
    for (const [hex, bytes] of fresh) await spool.writeChunk(hex, encodeChunk(bytes));
    await spool.addPending(copied.image, copied.record);
    return { image: copied.image, read, spooled: copied.spooled, bytesRead, heldMs };
  } catch (error) {
    await spool.sweep().catch(() => {});
    throw error;
  }
}

// Chunks kept in memory while the source's transaction is open; past this they are written to the spool
// at once (a first capture of a large database).
const FRESH_MEMORY_BYTES = 64 * 1024 * 1024;

interface Copied {
  /** Null when the content equals the previous capture's (only the evidence changed). */
  image: PendingImage | null;
  record: CaptureRecord;
  read: number;
  bytesRead: number;
  spooled: number;
}

// Reads what changed since the last capture while the source's read transaction is open.
async function copy(
  snap: SourceSnapshot,
  spool: Spool,
  options: CaptureOptions,
  fresh: Map<string, Uint8Array>,
): Promise<Copied | null> {
  const last = spool.capture;
  if (snap.pageCount === 0 && !options.force) {
    // An empty file where a database was: deleted and being created again, or truncated. Publishing it
    // would make "nothing" the newest snapshot; the next change is captured instead.
    if (last && last.imageLength > 0) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot capture "${snap.path}": the file holds no database (0 pages) where the last capture held ${last.imageLength} bytes; not publishing an empty snapshot`,
      );
    }
    if (options.hasSnapshots) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot capture "${snap.path}": the file holds no database (0 pages) while the stores hold snapshots of it; not publishing an empty snapshot`,
      );
    }
  }
  const chunkSize = checkChunkSize(options.chunkSize, snap.pageSize);
  const previous = usable(last, chunkSize, snap.pageSize);
  if (
    previous && !options.full && !options.force && sameEvidence(previous.evidence, snap.evidence) &&
    previous.imageLength === snap.imageLength
  ) {
    return null;
  }
  const total = Math.max(1, Math.ceil(snap.imageLength / chunkSize));
  const wanted = chooseChunks(snap, previous, total, chunkSize, options.full === true);
  const ids: string[] = new Array(Math.max(0, total - 1));
  if (wanted !== "all" && previous) {
    for (let i = 1; i < total && i - 1 < previous.ids.length; i++) ids[i - 1] = previous.ids[i - 1] as string;
  }
  // Chunks the previous image held are spooled or in every store already (see spool.ts).
  const known = options.full || !previous ? new Set<string>() : new Set(previous.ids);
  // The whole image is hashed only when nothing is known of it: a first or --full capture. Otherwise the
  // manifest's image digest names it, and each changed chunk its SHA-256.
  const hash = wanted === "all" && (!previous || options.full) ? createHash("sha256") : undefined;
  const order = wanted === "all"
    ? Array.from({ length: total }, (_, i) => i)
    : [...wanted].sort((a, b) => a - b);
  const perBatch = Math.max(1, Math.floor(READ_BATCH_BYTES / chunkSize));
  const perChunk = chunkSize / snap.pageSize;
  const spooled = new Set<string>();
  let freshBytes = 0;
  let chunk0 = new Uint8Array(0);
  let read = 0;
  let bytesRead = 0;
  let written = 0;
  for (let b = 0; b < order.length; b += perBatch) {
    options.signal?.throwIfAborted();
    const batch = order.slice(b, b + perBatch);
    const chunks = await readChunks(snap, batch, perChunk);
    read += chunks.length;
    for (const bytes of chunks) bytesRead += bytes.length;
    for (const bytes of chunks) hash?.update(bytes);
    const batchIds = await chunkIds(chunks.map((c, k) => (batch[k] === 0 ? new Uint8Array(0) : c)));
    for (const [k, i] of batch.entries()) {
      const bytes = chunks[k] as Uint8Array;
      if (i === 0) {
        chunk0 = bytes.slice();
        continue;
      }
      const hex = isZeroChunk(bytes) ? ZERO_HEX : idToHex(batchIds[k] as Uint8Array);
      ids[i - 1] = hex;
      if (hex === ZERO_HEX || known.has(hex) || spooled.has(hex)) continue;
      if (!spool.hasChunk(hex)) {
        if (freshBytes + bytes.length <= FRESH_MEMORY_BYTES) {
          // A copy: `bytes` may view a whole run's read, which would stay in memory with it.
          fresh.set(hex, bytes.slice());
          freshBytes += bytes.length;
        } else {
          // Stored raw while the source is held (compressing would hold it several times longer); the
          // publish compresses it into its pack.
          await spool.writeChunk(hex, encodeChunk(bytes, { codec: "none" }));
        }
        written++;
      }
      spooled.add(hex);
    }
    options.onProgress?.(Math.min(order.length, b + perBatch) * chunkSize, order.length * chunkSize);
  }
  const chunk0Sha256 = createHash("sha256").update(chunk0).digest("hex");
  if (
    previous && !options.full && !options.force && previous.chunk0Sha256 === chunk0Sha256 &&
    previous.imageLength === snap.imageLength && sameIds(previous.ids, ids)
  ) {
    return { image: null, record: { ...previous, evidence: snap.evidence }, read, bytesRead, spooled: 0 };
  }
  const sequence = Math.max(options.nextSequence, (spool.capture?.sequence ?? 0) + 1);
  const image: PendingImage = {
    version: 1,
    sequence,
    createdMs: Date.now(),
    sourceMtimeMs: snap.evidence.mtimeMs,
    sourcePath: snap.path,
    hostname: options.hostname,
    pageSize: snap.pageSize,
    imageLength: snap.imageLength,
    chunkSize,
    ids,
    chunk0: encodeChunk0(chunk0),
    imageSha256: hash ? hash.digest("hex") : null,
    publishedTo: [],
  };
  const record: CaptureRecord = {
    version: 1,
    sequence,
    chunkSize,
    pageSize: snap.pageSize,
    imageLength: snap.imageLength,
    evidence: snap.evidence,
    ids,
    chunk0Sha256,
  };
  return { image, record, read, bytesRead, spooled: written };
}

// Reads the chunks `batch` names (ascending), one request per run of neighbouring chunks: every request
// crosses to the reader process and back while the source is held.
async function readChunks(snap: SourceSnapshot, batch: number[], perChunk: number): Promise<Uint8Array[]> {
  const runs: number[][] = [];
  for (const i of batch) {
    const run = runs[runs.length - 1];
    if (run && run[run.length - 1] === i - 1) run.push(i);
    else runs.push([i]);
  }
  const read = await Promise.all(runs.map((run) => {
    const first = (run[0] as number) * perChunk + 1;
    return snap.readPages(first, Math.min(run.length * perChunk, snap.pageCount - first + 1));
  }));
  const chunks: Uint8Array[] = [];
  const chunkBytes = perChunk * snap.pageSize;
  for (const [r, run] of runs.entries()) {
    const bytes = read[r] as Uint8Array;
    for (let k = 0; k < run.length; k++) chunks.push(bytes.subarray(k * chunkBytes, (k + 1) * chunkBytes));
  }
  return chunks;
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

function usable(
  record: CaptureRecord | undefined,
  chunkSize: number,
  pageSize: number,
): CaptureRecord | undefined {
  if (!record || record.chunkSize !== chunkSize || record.pageSize !== pageSize) return undefined;
  if (record.ids.length !== Math.max(0, Math.ceil(record.imageLength / chunkSize) - 1)) return undefined;
  return record;
}

// The WAL may prove which pages changed since the last capture; chunk 0 is always read (it is inline).
function chooseChunks(
  snap: SourceSnapshot,
  previous: CaptureRecord | undefined,
  total: number,
  chunkSize: number,
  full: boolean,
): Set<number> | "all" {
  if (!previous || full) return "all";
  const pages = snap.changedPagesSince(previous.evidence);
  if (!pages) return "all";
  const wanted = new Set<number>([0]);
  const perChunk = chunkSize / snap.pageSize;
  for (const page of pages) {
    const chunk = Math.floor((page - 1) / perChunk);
    if (chunk < total) wanted.add(chunk);
  }
  const before = previous.ids.length + 1;
  for (let i = Math.max(1, before - 1); i < total; i++) wanted.add(i);
  if (previous.imageLength !== snap.imageLength) wanted.add(total - 1);
  return wanted;
}

/** The chunk size a capture uses: `chunkSize` checked, and never smaller than a page. */
export function checkChunkSize(chunkSize: number, pageSize: number): number {
  if (
    !Number.isInteger(chunkSize) || chunkSize < 4096 || chunkSize > 1 << 20 ||
    (chunkSize & (chunkSize - 1)) !== 0
  ) {
    throw new TesseraError(
      "CONFIG_INVALID",
      `Cannot use chunk size ${chunkSize}: expected a power of two from 4096 to 1048576 bytes`,
    );
  }
  return Math.max(chunkSize, pageSize);
}
