/**
 * `sync`: publish one consistent snapshot of a live database to every writable store. Chunks go first,
 * then the manifest, then the pointer; only chunks a store lacks are uploaded, and a local record of the
 * last sync lets a no-op or small change skip reading the whole file.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { tmpdir, userInfo } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { toHex } from "../bytes.ts";
import { encodeChunk } from "../chunk/codec.ts";
import { chunkId, chunkIds, hexToId, idToHex, isZeroChunk, ZERO_ID } from "../chunk/ids.ts";
import { TesseraError } from "../errors.ts";
import { ChunkUploader } from "../history/reuse.ts";
import { buildChunkList } from "../manifest/chunk_list.ts";
import { decodePointer, encodeManifest, encodePointer } from "../manifest/codec.ts";
import { chunkKey, manifestKey, pointerKey } from "../manifest/keys.ts";
import { checkChosenName, deriveName } from "../manifest/naming.ts";
import type { Manifest, Pointer } from "../manifest/types.ts";
import { refuseIfLeased } from "../replicate/lease.ts";
import type { BlobStore } from "../store/types.ts";
import { sameEvidence, type SourceSnapshot, withSourceSnapshot } from "./source.ts";
import { loadSyncState, saveSyncState, type SyncState } from "./state.ts";

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
  /** Where the record of the last sync lives. @default {`<tmpdir>/tessera-spool`} */
  spoolDir?: string | undefined;
  /** Read and hash the whole database even when the record proves what changed. */
  full?: boolean | undefined;
  /** Uploads in flight at once, per store. @default {8} */
  concurrency?: number | undefined;
  /** Who publishes, recorded in the pointer. @default {""} */
  writer?: string | undefined;
  signal?: AbortSignal | undefined;
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
  chunks: { total: number; read: number; uploaded: number; skipped: number; zero: number };
  bytes: { read: number; data: number; manifest: number };
  manifestKey: string;
  /** Things that went wrong without failing the sync, such as an unwritable spool directory. */
  warnings: string[];
}

const READ_BATCH_BYTES = 4 * 1024 * 1024;
const ZERO_HEX = "0".repeat(64);

/** Default spool directory: its contents only save work and may vanish at any time. */
export function defaultSpoolDir(): string {
  // Per user: a record another user could write would decide what this user's syncs upload.
  let user = "";
  try {
    user = `-${userInfo().uid}`;
  } catch {
    // No user database (some containers): a shared name, still created with mode 0700.
  }
  return join(tmpdir(), `tessera-spool${user}`);
}

/**
 * Publishes a snapshot of the database at `path`.
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
  const { stores } = options;
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
  const spoolDir = options.spoolDir ?? defaultSpoolDir();
  const descriptions = stores.map((s) => s.description);
  const state = await loadSyncState(spoolDir, name, descriptions);
  // A running replicator owns the database's pointer: a one-off sync would interleave with it.
  const me = { writer: options.writer ?? "", hostname: options.hostname, pid: process.pid, path: file };
  await Promise.all(stores.map((store) => refuseIfLeased(store, name, me, options.signal)));
  const report = await withSourceSnapshot(file, async (snapshot) => {
    const pointers = await Promise.all(stores.map((store) => readPointer(store, name, options.signal)));
    if (snapshot.pageCount === 0 && pointers.some((p) => p !== undefined)) {
      // An empty file where a database was (deleted and being created again, or truncated): publishing it
      // would make "nothing" the newest snapshot.
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot sync "${file}": the file holds no database (0 pages) while "${name}" has snapshots; not publishing an empty snapshot`,
      );
    }
    return await new SyncRun(snapshot, options, name, state, pointers).run();
  }, { signal: options.signal });
  if (report.state) {
    try {
      await saveSyncState(spoolDir, report.state);
    } catch (error) {
      // The snapshot is published; without the record the next sync only reads more.
      const reason = error instanceof Error ? error.message : String(error);
      report.report.warnings.push(`Cannot save the sync record in "${spoolDir}": ${reason}`);
    }
  }
  return report.report;
}

async function readPointer(
  store: BlobStore,
  name: string,
  signal: AbortSignal | undefined,
): Promise<Pointer | undefined> {
  const got = await store.get(pointerKey(name), { signal });
  if (got.status !== "ok") return undefined;
  return await decodePointer(got.body, { what: `${store.description} ${pointerKey(name)}` });
}

class SyncRun {
  readonly #snap: SourceSnapshot;
  readonly #options: SyncOptions;
  readonly #name: string;
  readonly #state: SyncState | undefined;
  readonly #pointers: (Pointer | undefined)[];
  readonly #chunkSize: number;
  // Chunk ids each store is known to hold: those of the manifest its pointer names.
  readonly #present = new Set<string>();
  readonly #counts = { read: 0, uploaded: 0 };
  readonly #bytes = { read: 0, data: 0, manifest: 0 };
  // Decides, per store, whether an existing chunk may be relied on while `tessera gc` runs (history/reuse.ts).
  readonly #uploader = new ChunkUploader();

  constructor(
    snap: SourceSnapshot,
    options: SyncOptions,
    name: string,
    state: SyncState | undefined,
    pointers: (Pointer | undefined)[],
  ) {
    this.#snap = snap;
    this.#options = options;
    this.#name = name;
    this.#pointers = pointers;
    this.#chunkSize = checkChunkSize(options.chunkSize ?? 65536, snap.pageSize);
    // The record is only trusted while every store's pointer still names the manifest it describes.
    const current = state && state.chunkSize === this.#chunkSize && state.pageSize === snap.pageSize &&
      pointers.every((p) => p !== undefined && toHex(p.manifestSha256) === state.manifestSha256);
    this.#state = current ? state : undefined;
    if (this.#state) {
      for (const id of [...this.#state.ids, ...this.#state.indexIds]) {
        this.#present.add(id);
      }
    }
  }

  async run(): Promise<{ report: SyncReport; state: SyncState | undefined }> {
    const snap = this.#snap;
    const state = this.#state;
    if (
      state && !this.#options.full && sameEvidence(state.evidence, snap.evidence) &&
      state.imageLength === snap.imageLength
    ) {
      const zero = state.ids.filter((id) => id === ZERO_HEX).length;
      return {
        report: this.#report(state.sequence, true, null, state.ids.length + 1, zero),
        state: undefined,
      };
    }
    const total = Math.max(1, Math.ceil(snap.imageLength / this.#chunkSize));
    const wanted = this.#chunksToRead(total);
    const ids: Uint8Array[] = new Array(Math.max(0, total - 1));
    if (wanted !== "all" && state) {
      for (let i = 1; i < total && i - 1 < state.ids.length; i++) {
        ids[i - 1] = hexToId(state.ids[i - 1] as string);
      }
    }
    const hash = wanted === "all" ? createHash("sha256") : undefined;
    let chunk0 = new Uint8Array(0);
    const order = wanted === "all"
      ? Array.from({ length: total }, (_, i) => i)
      : [...wanted].sort((a, b) => a - b);
    const perBatch = Math.max(1, Math.floor(READ_BATCH_BYTES / this.#chunkSize));
    for (let b = 0; b < order.length; b += perBatch) {
      this.#options.signal?.throwIfAborted();
      const batch = order.slice(b, b + perBatch);
      const chunks = await Promise.all(batch.map((i) => this.#readChunk(i)));
      for (const bytes of chunks) hash?.update(bytes);
      const batchIds = await chunkIds(chunks.map((c, k) => (batch[k] === 0 ? new Uint8Array(0) : c)));
      const uploads: [Uint8Array, Uint8Array, number][] = [];
      for (const [k, i] of batch.entries()) {
        const bytes = chunks[k] as Uint8Array;
        if (i === 0) {
          chunk0 = bytes.slice();
          continue;
        }
        const id = isZeroChunk(bytes) ? ZERO_ID : batchIds[k] as Uint8Array;
        ids[i - 1] = id;
        if (!isZeroId(id)) uploads.push([id, bytes, i]);
      }
      await this.#uploadChunks(uploads, "data");
      this.#options.onProgress?.(
        Math.min(order.length, b + perBatch) * this.#chunkSize,
        order.length * this.#chunkSize,
      );
    }
    const { list, indexChunks } = buildChunkList(ids);
    const indexIds = await chunkIds(indexChunks);
    await this.#uploadChunks(indexChunks.map((bytes, k) => [indexIds[k] as Uint8Array, bytes]), "manifest");
    // Chunks written over an old copy are checked again, once no collector can still delete them.
    this.#bytes.data += await this.#uploader.settle({ signal: this.#options.signal });
    const sequence = await this.#nextSequence();
    const imageSha256 = hash ? new Uint8Array(hash.digest()) : new Uint8Array(32);
    const manifest: Manifest = {
      identity: {
        name: this.#name,
        hostname: this.#options.name ? "" : this.#options.hostname,
        sourcePath: snap.path,
      },
      sequence,
      createdMs: Date.now(),
      sourceMtimeMs: snap.evidence.mtimeMs,
      pageSize: snap.pageSize,
      imageLength: snap.imageLength,
      chunkSize: this.#chunkSize,
      imageSha256,
      chunk0,
      chunks: list,
    };
    const manifestSha256 = await this.#publish(manifest);
    const newState: SyncState = {
      version: 1,
      name: this.#name,
      stores: this.#options.stores.map((s) => s.description),
      chunkSize: this.#chunkSize,
      pageSize: snap.pageSize,
      imageLength: snap.imageLength,
      evidence: snap.evidence,
      ids: ids.map(idToHex),
      indexIds: indexIds.map(idToHex),
      sequence,
      manifestSha256,
    };
    const zero = ids.filter(isZeroId).length;
    return {
      report: this.#report(sequence, false, hash ? toHex(imageSha256) : null, total, zero),
      state: newState,
    };
  }

  // One past every pointer, and past any manifest a publish that never reached its pointer left behind
  // (it is a complete snapshot, kept as history, but its sequence is taken).
  async #nextSequence(): Promise<number> {
    let sequence = 1 + Math.max(0, ...this.#pointers.map((p) => p?.sequence ?? 0));
    for (let skipped = 0; skipped < 1000; skipped++) {
      const key = manifestKey(this.#name, sequence);
      const heads = await Promise.all(
        this.#options.stores.map((s) => s.head(key, { signal: this.#options.signal })),
      );
      if (heads.every((h) => h.status === "not_found")) return sequence;
      sequence++;
    }
    throw new TesseraError(
      "CONFLICT",
      `Cannot choose a sequence for "${this.#name}": 1000 unpublished manifests lie ahead of its pointer`,
    );
  }

  // With a trusted record, the WAL may prove which pages changed; chunk 0 is always read (it is inline).
  #chunksToRead(total: number): Set<number> | "all" {
    const state = this.#state;
    if (!state || this.#options.full) return "all";
    const pages = this.#snap.changedPagesSince(state.evidence);
    if (!pages) return "all";
    const wanted = new Set<number>([0]);
    const perChunk = this.#chunkSize / this.#snap.pageSize;
    for (const page of pages) {
      const chunk = Math.floor((page - 1) / perChunk);
      if (chunk < total) wanted.add(chunk);
    }
    // A grown image has new chunks; a changed length also changes the last chunk's bytes.
    const before = state.ids.length + 1;
    for (let i = Math.max(1, before - 1); i < total; i++) wanted.add(i);
    if (state.imageLength !== this.#snap.imageLength) wanted.add(total - 1);
    return wanted;
  }

  async #readChunk(index: number): Promise<Uint8Array> {
    const perChunk = this.#chunkSize / this.#snap.pageSize;
    const first = index * perChunk + 1;
    const count = Math.min(perChunk, this.#snap.pageCount - first + 1);
    const bytes = await this.#snap.readPages(first, count);
    this.#counts.read++;
    this.#bytes.read += bytes.length;
    return bytes;
  }

  // Re-reads data chunk `index` from the snapshot, for a settle() that must write it again.
  async #reread(index: number, id: Uint8Array): Promise<Uint8Array> {
    const perChunk = this.#chunkSize / this.#snap.pageSize;
    const first = index * perChunk + 1;
    const bytes = await this.#snap.readPages(first, Math.min(perChunk, this.#snap.pageCount - first + 1));
    if (idToHex(await chunkId(bytes)) !== idToHex(id)) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot write chunk ${index} of "${this.#snap.path}" again: it reads differently within one snapshot`,
      );
    }
    return bytes;
  }

  // Each item is [id, bytes, data chunk index]; index chunks carry no index and keep their (small) bytes.
  async #uploadChunks(
    chunks: [Uint8Array, Uint8Array, number?][],
    kind: "data" | "manifest",
  ): Promise<void> {
    const { signal } = this.#options;
    const todo = chunks.filter(([id]) => {
      const hex = idToHex(id);
      if (this.#present.has(hex)) return false;
      this.#present.add(hex);
      return true;
    });
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const [id, bytes, index] = todo[next++] as [Uint8Array, Uint8Array, number?];
        // Encoded once for every store; settle() may need it again later, when a data chunk's bytes are
        // re-read rather than kept.
        let object: Uint8Array | undefined;
        let held: Uint8Array | undefined = bytes;
        const encoded = async () => (object ??= encodeChunk(held ?? await this.#reread(index as number, id)));
        let uploadedAny = false;
        for (const store of this.#options.stores) {
          const written = await this.#uploader.ensure(store, chunkKey(id), encoded, { signal });
          if (written === 0) continue;
          uploadedAny = true;
          if (kind === "data") this.#bytes.data += written;
          else this.#bytes.manifest += written;
        }
        object = undefined;
        if (index !== undefined) held = undefined;
        if (kind === "data" && uploadedAny) this.#counts.uploaded++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.#options.concurrency ?? 8) }, worker));
  }

  async #publish(manifest: Manifest): Promise<string> {
    const { signal } = this.#options;
    const manifestBytes = await encodeManifest(manifest);
    const manifestSha256 = new Uint8Array(
      await crypto.subtle.digest("SHA-256", manifestBytes as Uint8Array<ArrayBuffer>),
    );
    const pointer = await encodePointer({
      sequence: manifest.sequence,
      manifestSha256,
      createdMs: manifest.createdMs,
      writer: this.#options.writer ?? "",
    });
    const key = manifestKey(this.#name, manifest.sequence);
    for (const store of this.#options.stores) {
      await putManifestOnce(store, key, manifestBytes, signal);
      this.#bytes.manifest += manifestBytes.length;
    }
    for (const store of this.#options.stores) {
      await store.put(pointerKey(this.#name), pointer, { signal });
      this.#bytes.manifest += pointer.length;
    }
    return toHex(manifestSha256);
  }

  #report(
    sequence: number,
    noop: boolean,
    imageSha256: string | null,
    total: number,
    zero: number,
  ): SyncReport {
    const { read, uploaded } = this.#counts;
    return {
      name: this.#name,
      sequence,
      noop,
      imageLength: this.#snap.imageLength,
      imageSha256,
      chunks: { total, read, uploaded, skipped: Math.max(0, total - 1 - uploaded - zero), zero },
      bytes: { ...this.#bytes },
      manifestKey: manifestKey(this.#name, sequence),
      warnings: [],
    };
  }
}

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

function isZeroId(id: Uint8Array): boolean {
  return id.every((b) => b === 0);
}

// Manifests are immutable: where the store can refuse to replace one, a second writer that picked the same
// sequence fails here instead of swapping the manifest under the first writer's pointer. A refusal for our
// own bytes (a retried PUT that had in fact landed) is no conflict.
export async function putManifestOnce(
  store: BlobStore,
  key: string,
  bytes: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<void> {
  try {
    await store.put(key, bytes, { signal, ifNoneMatch: "*" });
  } catch (error) {
    if (!(error instanceof TesseraError && error.code === "PRECONDITION_FAILED")) throw error;
    const existing = await store.get(key, { signal });
    if (
      existing.status === "ok" && existing.body.length === bytes.length &&
      existing.body.every((b, i) => b === bytes[i])
    ) {
      return;
    }
    throw new TesseraError(
      "CONFLICT",
      `Cannot publish "${key}" to ${store.description}: another writer published that sequence first; ` +
        "sync again (and run one replicator per database)",
      { cause: error },
    );
  }
}
