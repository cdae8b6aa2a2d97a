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
import { CHUNK_HEADER_LENGTH, encodeChunk } from "../chunk/codec.ts";
import { chunkId, chunkIds, hexToId, idToHex, ZERO_HEX } from "../chunk/ids.ts";
import { buildPack, type ChunkLocation, PACK_TARGET_BYTES } from "../chunk/pack.ts";
import { StoreChunkSource } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import { buildChunkList } from "../manifest/build_chunk_list.ts";
import { chunkPlaces } from "../manifest/locate.ts";
import { loadPointed, readPointer } from "../manifest/catalog.ts";
import { decodeManifest, encodeManifest, encodePointer } from "../manifest/codec.ts";
import { imageDigest } from "../manifest/digest.ts";
import { chunkKey, manifestKey, packKey, pointerKey } from "../manifest/keys.ts";
import type { Manifest, Pointer } from "../manifest/types.ts";
import { forEachLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";
import { planRepack } from "./repack.ts";
import { ChunkUploader } from "./reuse.ts";
import { pendingChunk0, type PendingImage, type Spool } from "./spool.ts";

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
  /** Pack objects written (the data chunks travel in them). */
  packs: number;
  /** Chunks the store held that were moved into the new packs (repacking). */
  moved: number;
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
  /** Pack uploads in flight at once. @default {3} */
  concurrency?: number | undefined;
}

/** Where the store keeps a chunk: in a pack, or (`undefined`) as its own object. */
type Place = ChunkLocation | undefined;

/** One store a writer (the replicator, or `tessera sync`) publishes to, and what it knows of it. */
export class PublishTarget {
  readonly store: BlobStore;
  readonly #name: string;
  readonly #writer: string;
  // Chunks the store holds for sure, by hex id, with where: those of the manifest its pointer names.
  #present = new Map<string, Place>();
  // The pointer as this replicator last saw or wrote it; undefined: the store has none.
  #expected: Pointer | undefined;
  #ready = false;

  readonly #startedMs: number;
  readonly #adoptOwn: boolean;
  readonly #who: string;
  readonly #concurrency: number;
  // The pointer as it was when this run first read it (undefined: none, or not read yet).
  #initial: Pointer | undefined;

  constructor(store: BlobStore, name: string, writer: string, options: PublishTargetOptions = {}) {
    this.store = store;
    this.#name = name;
    this.#writer = writer;
    this.#startedMs = options.startedMs ?? Date.now();
    this.#adoptOwn = (options.role ?? "replicator") === "replicator";
    this.#who = this.#adoptOwn ? "this replicator" : "this sync";
    this.#concurrency = options.concurrency ?? 3;
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
   * Reads the store's pointer and where the chunks of its manifest live: those a publish reuses without
   * asking the store (the manifest a pointer names is never pruned, so `tessera gc` keeps them). With
   * `late` (the store was unreachable when the run started), a pointer another writer published after the
   * start is refused with `CONFLICT`: that writer ran while this one could not see the store. A pointer
   * whose manifest cannot be read (gone, damaged) leaves nothing present: the next publish writes every
   * chunk.
   */
  async init(signal?: AbortSignal, late = false): Promise<void> {
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
    this.#present = new Map();
    if (pointer) {
      try {
        const { manifest } = await loadPointed(this.store, this.#name, pointer, { signal });
        await this.#learn(manifest, signal);
      } catch (error) {
        if (!(error instanceof TesseraError && DAMAGED.has(error.code))) throw error;
        this.#present = new Map();
      }
    }
    this.#expected = pointer;
    this.#ready = true;
  }

  /**
   * Asks the store about every object the chunks taken as present live in (one HEAD per pack or chunk
   * object, not per chunk), and forgets the chunks of those it lacks, so the next publish writes them
   * again: what a writer does when no record of its own vouches for the store (a store that lost objects is
   * repaired). Returns the keys found missing.
   */
  async checkPresent(signal?: AbortSignal): Promise<string[]> {
    const byKey = new Map<string, string[]>();
    const sizes = new Map<string, number>();
    for (const [hex, where] of this.#present) {
      if (hex === ZERO_HEX) continue;
      const key = where ? packKey(where.pack) : chunkKey(hexToId(hex));
      if (where) sizes.set(key, where.packLength);
      const held = byKey.get(key);
      if (held) held.push(hex);
      else byKey.set(key, [hex]);
    }
    const missing: string[] = [];
    await forEachLimit(byKey, async ([key, hexes]) => {
      // A pack of another length than the manifest says was cut short or replaced: written again too.
      const head = await this.store.head(key, { signal });
      if (head.status === "ok" && (!sizes.has(key) || head.size === sizes.get(key))) return;
      missing.push(key);
      for (const hex of hexes) this.#present.delete(hex);
    }, { concurrency: 8, signal });
    return missing.sort();
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
      // The same storage under another name: what the other target holds, this one does.
      this.#expected = pointer;
      await this.init(signal);
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
    const { located, uploadedIds, packs, dataBytes, moved } = await this.#uploadPacks(image, spool, signal);
    let manifestBytes = 0;
    const ids = image.ids.map(hexToId);
    const locations = image.ids.map((hex) => located.get(hex) ?? this.#present.get(hex));
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
      ids,
      { uploader, present: this.#present, signal, locations },
    );
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
    if (written.adopted) {
      // An earlier attempt's manifest was kept: its chunks live where it says, not in this attempt's packs.
      await this.#learn(written.manifest, signal);
    } else {
      this.#present = new Map(image.ids.map((hex, i) => [hex, locations[i]]));
      for (const id of indexIds) this.#present.set(idToHex(id), undefined);
    }
    return {
      uploaded: uploadedIds.length,
      moved,
      packs,
      bytes: dataBytes + manifestBytes + encodedManifest.length,
      dataBytes,
      manifestBytes: manifestBytes + encodedManifest.length + pointerBytes.length,
      uploadedIds,
      manifestSha256: toHex(manifestSha256),
      already: false,
      pointer: next_,
    };
  }

  /**
   * Writes the chunks of `image` the store does not hold, from the spool, into new packs of about
   * {@linkcode PACK_TARGET_BYTES}, in image order (so a reader fetches neighbours with one ranged GET), with
   * at most `concurrency` pack uploads in flight; then the chunks {@linkcode planRepack} moves out of sparse
   * or small objects, read from the store (checked against their ids) with ranged GETs. No request asks the
   * store what it has: what the pointer's manifest names is reused, everything else is written, and every
   * pack is a new object.
   */
  async #uploadPacks(image: PendingImage, spool: Spool, signal: AbortSignal | undefined) {
    const located = new Map<string, ChunkLocation>();
    const uploadedIds: string[] = [];
    let packs = 0;
    let dataBytes = 0;
    const todo = [...new Set(image.ids)].filter((hex) => hex !== ZERO_HEX && !this.#present.has(hex));
    const repack = planRepack(image.ids, this.#present, new Set(todo), image.imageLength, image.chunkSize);
    const moving = new Set(repack.move);
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let batch: { id: Uint8Array; object: Uint8Array }[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const chunks = batch;
      batch = [];
      batchBytes = 0;
      const pack = await buildPack(chunks);
      chunks.forEach(({ id }, i) => located.set(idToHex(id), pack.locations[i]!));
      while (inFlight.size >= this.#concurrency) await Promise.race(inFlight);
      if (failure) throw failure.error;
      const put: Promise<void> = this.store.put(packKey(pack.id), pack.bytes, { signal }).then(
        () => {
          packs++;
          dataBytes += pack.bytes.length;
          for (const { id } of chunks) {
            const hex = idToHex(id);
            if (!moving.has(hex)) uploadedIds.push(hex);
          }
        },
        (error) => {
          failure ??= { error };
        },
      ).finally(() => inFlight.delete(put));
      inFlight.add(put);
    };
    const add = async (hex: string, object: Uint8Array) => {
      // A chunk the capture spooled raw (to let go of the source sooner) is compressed now, when that pays.
      if (object[5] === 0) object = encodeChunk(object.subarray(CHUNK_HEADER_LENGTH));
      batch.push({ id: hexToId(hex), object });
      batchBytes += object.length;
      if (batchBytes >= PACK_TARGET_BYTES) await flush();
    };
    try {
      for (const hex of todo) {
        if (failure) break;
        const object = spool.hasChunk(hex) ? await spool.readChunk(hex) : undefined;
        if (object === undefined) throw new SpoolIncompleteError(this.store.description, hex, image.sequence);
        await add(hex, object);
      }
      // Moved chunks are read a bounded group at a time, neighbours in a pack with one ranged GET.
      const source = new StoreChunkSource(this.store);
      for (let first = 0; first < repack.move.length && !failure; first += REPACK_GROUP) {
        const group = repack.move.slice(first, first + REPACK_GROUP);
        const objects = await source.getObjects(
          group.map((hex) => ({ id: hexToId(hex), where: this.#present.get(hex) })),
          { signal },
        );
        for (const [k, hex] of group.entries()) {
          const object = objects[k];
          if (object === undefined) {
            throw new TesseraError(
              "NOT_FOUND",
              `Cannot repack chunk ${hex} of "${this.#name}" in ${this.store.description}: the object the ` +
                "pointer's snapshot keeps it in is gone; run tessera sync --full to write it again",
            );
          }
          await add(hex, object);
        }
      }
      if (!failure) await flush();
    } finally {
      await Promise.all(inFlight);
    }
    if (failure) throw failure.error;
    return { located, uploadedIds, packs, dataBytes, moved: repack.move.length };
  }

  // Takes the chunks of `manifest` (the pointer's) as present, where it says they live.
  async #learn(manifest: Manifest, signal: AbortSignal | undefined): Promise<void> {
    this.#present = await chunkPlaces(this.store, manifest, {
      doing: `read ${this.store.description}`,
      signal,
    });
    if (manifest.chunks.kind === "indexed") {
      for (const id of manifest.chunks.indexIds) this.#present.set(idToHex(id), undefined);
    }
  }

  async #readPointer(signal?: AbortSignal): Promise<Pointer | undefined> {
    return await readPointer(this.store, this.#name, { signal });
  }
}

/** How many chunks a repack reads from the store at once. */
const REPACK_GROUP = 256;

/** What a pointer's manifest that cannot be read looks like: the publish then relies on nothing. */
const DAMAGED = new Set(["NOT_FOUND", "CORRUPT_MANIFEST", "CORRUPT_CHUNK", "CHECKSUM_MISMATCH"]);

function nothingSent(pointer: Pointer): PublishResult {
  return {
    uploaded: 0,
    packs: 0,
    moved: 0,
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

/**
 * Builds the format 2 manifest of an image from its fields, the ids of its data chunks (chunks 1 .. n-1)
 * and where each lives (`undefined`: its own object), with the image digest.
 */
export async function buildManifest(
  fields: Omit<Manifest, "chunks" | "version" | "imageDigest">,
  ids: Uint8Array[],
  locations?: readonly (ChunkLocation | undefined)[],
): Promise<BuiltManifest> {
  const { list, indexChunks } = buildChunkList(ids, { locations });
  const indexIds = await chunkIds(indexChunks);
  const digest = await imageDigest(fields.imageLength, fields.chunkSize, fields.chunk0, ids);
  const manifest: Manifest = { ...fields, version: 2, imageDigest: digest, chunks: list };
  const bytes = await encodeManifest(manifest);
  const manifestSha256 = await chunkId(bytes);
  return { manifest, bytes, manifestSha256, indexChunks, indexIds };
}

/** What {@linkcode writeManifest} wrote. */
export interface WrittenManifest extends BuiltManifest {
  /** Bytes of index chunks written. */
  indexBytes: number;
  /** Bytes of chunks `uploader.settle()` wrote back. */
  settledBytes: number;
  /** The store held this image's manifest from an earlier attempt already, and it was kept: `manifest`,
   * `bytes` and the ids are that one's (its chunks live where it says). */
  adopted?: boolean;
}

/**
 * Writes the manifest of an image whose data chunks (ids of chunks 1 .. n-1) the store holds: its index
 * chunks (unless `present` has them), then, once `uploader` has settled every chunk written over an old
 * copy, the manifest itself, refusing to replace another writer's ({@linkcode putManifestOnce}). The
 * pointer is the caller's to write.
 */
export async function writeManifest(
  store: BlobStore,
  fields: Omit<Manifest, "chunks" | "version" | "imageDigest">,
  ids: Uint8Array[],
  options: {
    uploader?: ChunkUploader;
    present?: { has(hex: string): boolean };
    signal?: AbortSignal | undefined;
    locations?: readonly (ChunkLocation | undefined)[] | undefined;
  } = {},
): Promise<WrittenManifest> {
  const { signal } = options;
  const uploader = options.uploader ?? new ChunkUploader();
  const built = await buildManifest(fields, ids, options.locations);
  let indexBytes = 0;
  for (const [k, chunk] of built.indexChunks.entries()) {
    const id = built.indexIds[k] as Uint8Array;
    if (options.present?.has(idToHex(id))) continue;
    indexBytes += await uploader.ensure(store, chunkKey(id), () => encodeChunk(chunk), { signal });
  }
  // Chunks written over an old copy are checked again, once no collector can still delete them.
  const settledBytes = await uploader.settle({ signal });
  const stored = await putManifestOnce(
    store,
    manifestKey(fields.identity.name, fields.sequence),
    built.bytes,
    signal,
    async (existing) => {
      const theirs = await decodeManifest(existing).catch(() => undefined);
      const mine = built.manifest;
      return theirs !== undefined && theirs.version === 2 && theirs.createdMs === mine.createdMs &&
        theirs.sequence === mine.sequence && theirs.identity.name === mine.identity.name &&
        toHex(theirs.imageDigest!) === toHex(mine.imageDigest!);
    },
  );
  if (stored !== built.bytes) {
    const manifest = await decodeManifest(stored);
    const manifestSha256 = await chunkId(stored);
    const indexIds = manifest.chunks.kind === "indexed" ? manifest.chunks.indexIds : [];
    return {
      manifest,
      bytes: stored,
      manifestSha256,
      indexChunks: [],
      indexIds,
      indexBytes,
      settledBytes,
      adopted: true,
    };
  }
  return { ...built, indexBytes, settledBytes };
}

// Manifests are immutable: where the store can refuse to replace one, a second writer that picked the same
// sequence fails here instead of swapping the manifest under the first writer's pointer. A refusal for our
// own bytes (a retried PUT that had in fact landed) is no conflict.
//
// A retried publish of the same image builds new packs (each pack is a new object), so its manifest's bytes
// differ from the one an earlier attempt stored before its answer, or the pointer's, was lost. When `ours`
// recognises the stored manifest as that attempt's (same image), it is kept and returned: its packs were
// written before it.
export async function putManifestOnce(
  store: BlobStore,
  key: string,
  bytes: Uint8Array,
  signal: AbortSignal | undefined,
  ours?: (existing: Uint8Array) => Promise<boolean>,
): Promise<Uint8Array> {
  try {
    await store.put(key, bytes, { signal, ifNoneMatch: "*" });
    return bytes;
  } catch (error) {
    if (!(error instanceof TesseraError && error.code === "PRECONDITION_FAILED")) throw error;
    const existing = await store.get(key, { signal });
    if (
      existing.status === "ok" && existing.body.length === bytes.length &&
      existing.body.every((b, i) => b === bytes[i])
    ) {
      return bytes;
    }
    if (existing.status === "ok" && await ours?.(existing.body)) return existing.body;
    throw new TesseraError(
      "CONFLICT",
      `Cannot publish "${key}" to ${store.description}: another writer published that sequence first; ` +
        "sync again (and run one replicator per database)",
      { cause: error },
    );
  }
}
