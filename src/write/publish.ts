/**
 * Publishing, the second step of every write: a spooled image goes to one store as the chunks the store
 * lacks (from the spool), then the manifest, then the pointer, after checking that the pointer is still the
 * one this writer last saw. A store whose pointer moved under it belongs to another writer: publishing
 * stops with `CONFLICT` rather than interleave two histories. `tessera sync` and the replicator both
 * publish through {@linkcode PublishTarget}.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { encodeChunk } from "../chunk/codec.ts";
import { chunkIds, hexToId, idToHex, ZERO_HEX } from "../chunk/ids.ts";
import { StoreChunkSource } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import { buildChunkList } from "../manifest/build_chunk_list.ts";
import { manifestChunkIds } from "../manifest/chunk_list.ts";
import { loadPointed, readPointer } from "../manifest/catalog.ts";
import { encodeManifest, encodePointer } from "../manifest/codec.ts";
import { chunkKey, manifestKey, pointerKey } from "../manifest/keys.ts";
import type { Manifest, Pointer } from "../manifest/types.ts";
import { forEachLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";
import { ChunkUploader } from "./reuse.ts";
import { type CaptureRecord, pendingChunk0, type PendingImage, type Spool } from "./spool.ts";

/** A chunk of a pending image is neither spooled nor in the store: the spool must capture the whole image. */
export class SpoolIncompleteError extends TesseraError {
  constructor(store: string, hex: string, sequence: number) {
    super(
      "NOT_FOUND",
      `Cannot publish sequence ${sequence} to ${store}: chunk ${hex} is neither in the spool nor in the store; ` +
        "capturing the whole database again",
    );
  }
}

/**
 * The store's pointer, which predates this run, is at or past the image's sequence: a predecessor (an
 * earlier spool of this database, say one a reboot cleared) published further there. The replicator moves
 * its sequences past it and publishes a new image.
 */
export class PointerAheadError extends TesseraError {
  readonly sequence: number;
  constructor(store: string, name: string, image: number, pointer: Pointer) {
    super(
      "CONFLICT",
      `Cannot publish sequence ${image} of "${name}" to ${store}: its pointer, older than this run, is at ` +
        `sequence ${pointer.sequence} (writer "${pointer.writer}"); continuing after it`,
    );
    this.sequence = pointer.sequence;
  }
}

/** What one publish sent. */
export interface PublishResult {
  /** Spooled data chunks written to the store. */
  uploaded: number;
  /** Bytes written: data chunks, index chunks and the manifest (not the pointer). */
  bytes: number;
  /** Of `bytes`, those of data chunks (including chunks written back after a collector deleted them). */
  dataBytes: number;
  /** Bytes of index chunks, the manifest and the pointer. */
  manifestBytes: number;
  /** Hex ids of the data chunks written. */
  uploadedIds: string[];
  /** Hex SHA-256 of the manifest published (that of the pointer's manifest when `already`). */
  manifestSha256: string;
  /** The image was already there (a previous run published it and stopped before recording it). */
  already: boolean;
  /** The store's pointer after the publish. */
  pointer: Pointer;
}

/** Options of {@linkcode PublishTarget}. */
export interface PublishTargetOptions {
  /** When this writer started: pointers another writer published after it, while the store was unreachable, are refused. */
  startedMs?: number | undefined;
  /**
   * Who publishes: "replicator" adopts a pointer its own writer id published (a publish whose answer was
   * lost); "sync" never does (every sync may carry the same writer name). @default {"replicator"}
   */
  role?: "replicator" | "sync" | undefined;
  /** Chunk uploads in flight at once. @default {8} */
  concurrency?: number | undefined;
  /**
   * Take the chunks of the manifest the store's pointer names as present (read from the manifest, not
   * checked one by one). `tessera sync` does not: without a record it can trust, it asks the store about
   * every chunk, so a store that lost chunks is repaired, and a pointer whose manifest is gone does not
   * stop it. @default {true}
   */
  trustPointer?: boolean | undefined;
}

/** One store a writer (the replicator, or `tessera sync`) publishes to, and what it knows of it. */
export class PublishTarget {
  readonly store: BlobStore;
  readonly #name: string;
  readonly #writer: string;
  // Chunk ids the store holds for sure: those of the manifest its pointer names.
  #present = new Set<string>();
  // The pointer as this replicator last saw or wrote it; undefined: the store has none.
  #expected: Pointer | undefined;
  #ready = false;

  readonly #startedMs: number;
  readonly #adoptOwn: boolean;
  readonly #who: string;
  readonly #concurrency: number;
  readonly #trustPointer: boolean;
  // The pointer as it was when this run first read it (undefined: none, or not read yet).
  #initial: Pointer | undefined;

  constructor(store: BlobStore, name: string, writer: string, options: PublishTargetOptions = {}) {
    this.store = store;
    this.#name = name;
    this.#writer = writer;
    this.#startedMs = options.startedMs ?? Date.now();
    this.#adoptOwn = (options.role ?? "replicator") === "replicator";
    this.#who = this.#adoptOwn ? "this replicator" : "this sync";
    this.#concurrency = options.concurrency ?? 8;
    this.#trustPointer = options.trustPointer ?? true;
  }

  /** The pointer as last seen or written (undefined: none, or not read yet). */
  get pointer(): Pointer | undefined {
    return this.#expected;
  }

  /** The sequence the store's pointer names, as last seen (0: none or not read yet). */
  get sequence(): number {
    return this.#expected?.sequence ?? 0;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Reads the store's pointer and the chunks its manifest names. With `late` (the store was unreachable
   * when the run started), a pointer another writer published after the start is refused with `CONFLICT`:
   * that writer ran while this one could not see the store. With `known`, a capture record whose image is
   * the manifest the pointer names, the record's chunk ids stand for that manifest's (no manifest read).
   */
  async init(signal?: AbortSignal, late = false, known?: CaptureRecord): Promise<void> {
    const pointer = await this.#readPointer(signal);
    if (late && pointer && pointer.writer !== this.#writer && pointer.createdMs > this.#startedMs) {
      throw new TesseraError(
        "CONFLICT",
        `Cannot publish database "${this.#name}" to ${this.store.description}: while the store was unreachable, ` +
          `writer "${pointer.writer}" published sequence ${pointer.sequence} there. Run one replicator (and no ` +
          "tessera sync) per database",
      );
    }
    if (!this.#ready) this.#initial = pointer;
    this.#present = new Set();
    if (pointer && known?.manifestSha256 === toHex(pointer.manifestSha256)) {
      for (const hex of known.ids) this.#present.add(hex);
    } else if (pointer && this.#trustPointer) {
      const { manifest } = await loadPointed(this.store, this.#name, pointer, { signal });
      const source = new StoreChunkSource(this.store);
      const ids = await manifestChunkIds(manifest, source, {
        doing: `read ${this.store.description}`,
        signal,
      });
      for (const id of ids) this.#present.add(idToHex(id));
      if (manifest.chunks.kind === "indexed") {
        for (const id of manifest.chunks.indexIds) this.#present.add(idToHex(id));
      }
    }
    this.#expected = pointer;
    this.#ready = true;
  }

  /**
   * Publishes `image` from `spool`; the store's pointer must still be what this target last saw, or one of
   * `ours`: pointers this writer has just published elsewhere (two targets naming the same storage), which
   * mean the image is there already.
   */
  async publish(
    image: PendingImage,
    spool: Spool,
    signal?: AbortSignal,
    ours: readonly Pointer[] = [],
  ): Promise<PublishResult> {
    if (!this.#ready) await this.init(signal, true);
    let pointer = await this.#readPointer(signal);
    if (pointer && !samePointer(pointer, this.#expected) && ours.some((p) => samePointer(p, pointer))) {
      this.#expected = pointer;
      this.#present = new Set(image.ids);
      return nothingSent(pointer);
    }
    if (!samePointer(pointer, this.#expected)) {
      if (this.#adoptOwn && pointer && pointer.writer === this.#writer) {
        // This replicator's own pointer: a publish whose answer was lost, or one a crash kept from being
        // recorded. Adopt it; the image is done if the pointer is at or past it.
        await this.init(signal);
        if (pointer.sequence >= image.sequence) return nothingSent(pointer);
        pointer = this.#expected;
      }
    }
    if (!samePointer(pointer, this.#expected)) {
      throw new TesseraError(
        "CONFLICT",
        `Cannot publish database "${this.#name}" to ${this.store.description}: its pointer moved from sequence ` +
          `${this.#expected?.sequence ?? "none"} to ${pointer?.sequence ?? "none"} (writer ` +
          `"${pointer?.writer ?? ""}") while ${this.#who} ran; another writer publishes this database. ` +
          "Run one replicator (and no tessera sync) per database",
      );
    }
    if (pointer && pointer.sequence >= image.sequence) {
      if (this.#adoptOwn && pointer.writer === this.#writer) return nothingSent(pointer);
      if (samePointer(pointer, this.#initial)) {
        throw new PointerAheadError(this.store.description, this.#name, image.sequence, pointer);
      }
      throw new TesseraError(
        "CONFLICT",
        `Cannot publish sequence ${image.sequence} of "${this.#name}" to ${this.store.description}: its pointer ` +
          `is at sequence ${pointer.sequence} already (writer "${pointer.writer}")`,
      );
    }
    const uploader = new ChunkUploader();
    const uploadedIds: string[] = [];
    let dataBytes = 0;
    let manifestBytes = 0;
    const todo = [...new Set(image.ids)].filter((hex) => hex !== ZERO_HEX && !this.#present.has(hex));
    await forEachLimit(todo, async (hex) => {
      const key = chunkKey(hexToId(hex));
      const spooled = spool.hasChunk(hex);
      const sent = await uploader.ensure(this.store, key, async () => {
        const object = spooled ? await spool.readChunk(hex) : undefined;
        if (object !== undefined) return object;
        // Not spooled: the store should hold it from an earlier image (an old copy is written again).
        const got = await this.store.get(key, { signal });
        if (got.status !== "ok") {
          throw new SpoolIncompleteError(this.store.description, hex, image.sequence);
        }
        return got.body;
      }, { signal });
      if (sent > 0 && spooled) {
        uploadedIds.push(hex);
        dataBytes += sent;
      }
    }, { concurrency: this.#concurrency, signal });

    const written = await writeManifest(
      this.store,
      {
        identity: { name: this.#name, hostname: image.hostname, sourcePath: image.sourcePath },
        sequence: image.sequence,
        createdMs: image.createdMs,
        sourceMtimeMs: image.sourceMtimeMs,
        pageSize: image.pageSize,
        imageLength: image.imageLength,
        chunkSize: image.chunkSize,
        imageSha256: image.imageSha256 ? hexToId(image.imageSha256) : new Uint8Array(32),
        chunk0: pendingChunk0(image),
      },
      image.ids.map(hexToId),
      { uploader, present: this.#present, signal },
    );
    dataBytes += written.settledBytes;
    manifestBytes += written.indexBytes;
    const { manifestSha256, indexIds } = written;
    const encodedManifest = written.bytes;
    const next_: Pointer = {
      sequence: image.sequence,
      manifestSha256,
      createdMs: image.createdMs,
      writer: this.#writer,
    };
    const pointerBytes = await encodePointer(next_);
    await this.store.put(pointerKey(this.#name), pointerBytes, { signal });
    this.#expected = next_;
    this.#present = new Set(image.ids);
    for (const id of indexIds) this.#present.add(idToHex(id));
    return {
      uploaded: uploadedIds.length,
      bytes: dataBytes + manifestBytes + encodedManifest.length,
      dataBytes,
      manifestBytes: manifestBytes + encodedManifest.length + pointerBytes.length,
      uploadedIds,
      manifestSha256: toHex(manifestSha256),
      already: false,
      pointer: next_,
    };
  }

  async #readPointer(signal?: AbortSignal): Promise<Pointer | undefined> {
    return await readPointer(this.store, this.#name, { signal });
  }
}

function nothingSent(pointer: Pointer): PublishResult {
  return {
    uploaded: 0,
    bytes: 0,
    dataBytes: 0,
    manifestBytes: 0,
    uploadedIds: [],
    manifestSha256: toHex(pointer.manifestSha256),
    already: true,
    pointer,
  };
}

function samePointer(a: Pointer | undefined, b: Pointer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.sequence === b.sequence && a.writer === b.writer &&
    toHex(a.manifestSha256) === toHex(b.manifestSha256);
}

/** A manifest ready to publish: its index chunks, and its bytes with their SHA-256 (what a pointer names). */
export interface BuiltManifest {
  manifest: Manifest;
  bytes: Uint8Array;
  manifestSha256: Uint8Array;
  indexChunks: Uint8Array[];
  indexIds: Uint8Array[];
}

/** Builds the manifest of an image from its fields and the ids of its data chunks (chunks 1 .. n-1). */
export async function buildManifest(
  fields: Omit<Manifest, "chunks">,
  ids: Uint8Array[],
): Promise<BuiltManifest> {
  const { list, indexChunks } = buildChunkList(ids);
  const indexIds = await chunkIds(indexChunks);
  const manifest: Manifest = { ...fields, chunks: list };
  const bytes = await encodeManifest(manifest);
  const manifestSha256 = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return { manifest, bytes, manifestSha256, indexChunks, indexIds };
}

/** What {@linkcode writeManifest} wrote. */
export interface WrittenManifest extends BuiltManifest {
  /** Bytes of index chunks written. */
  indexBytes: number;
  /** Bytes of chunks `uploader.settle()` wrote back. */
  settledBytes: number;
}

/**
 * Writes the manifest of an image whose data chunks (ids of chunks 1 .. n-1) the store holds: its index
 * chunks (unless `present` has them), then, once `uploader` has settled every chunk written over an old
 * copy, the manifest itself, refusing to replace another writer's ({@linkcode putManifestOnce}). The
 * pointer is the caller's to write.
 */
export async function writeManifest(
  store: BlobStore,
  fields: Omit<Manifest, "chunks">,
  ids: Uint8Array[],
  options: { uploader?: ChunkUploader; present?: ReadonlySet<string>; signal?: AbortSignal | undefined } = {},
): Promise<WrittenManifest> {
  const { signal } = options;
  const uploader = options.uploader ?? new ChunkUploader();
  const built = await buildManifest(fields, ids);
  let indexBytes = 0;
  for (const [k, chunk] of built.indexChunks.entries()) {
    const id = built.indexIds[k] as Uint8Array;
    if (options.present?.has(idToHex(id))) continue;
    indexBytes += await uploader.ensure(store, chunkKey(id), () => encodeChunk(chunk), { signal });
  }
  // Chunks written over an old copy are checked again, once no collector can still delete them.
  const settledBytes = await uploader.settle({ signal });
  await putManifestOnce(store, manifestKey(fields.identity.name, fields.sequence), built.bytes, signal);
  return { ...built, indexBytes, settledBytes };
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
