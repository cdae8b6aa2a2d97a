/**
 * Publishing a spooled image to one store: the chunks the store lacks (from the spool), then the manifest,
 * then the pointer, after checking that the pointer is still the one this replicator last saw. A store
 * whose pointer moved under it belongs to another writer: publishing stops with `CONFLICT` rather than
 * interleave two histories.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { encodeChunk } from "../chunk/codec.ts";
import { chunkIds, hexToId, idToHex } from "../chunk/ids.ts";
import { StoreChunkSource } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import { ChunkUploader } from "../history/reuse.ts";
import { buildChunkList, manifestChunkIds } from "../manifest/chunk_list.ts";
import { decodePointer, encodeManifest, encodePointer } from "../manifest/codec.ts";
import { chunkKey, manifestKey, pointerKey } from "../manifest/keys.ts";
import type { Manifest, Pointer } from "../manifest/types.ts";
import { loadPointed } from "../restore/manifest_source.ts";
import { putManifestOnce } from "../snapshot/sync.ts";
import type { BlobStore } from "../store/types.ts";
import { pendingChunk0, type PendingImage, type Spool } from "./spool.ts";

const ZERO_HEX = "0".repeat(64);

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
  uploaded: number;
  bytes: number;
  /** The image was already there (a previous run published it and stopped before recording it). */
  already: boolean;
}

/** One store the replicator publishes to, and what it knows of it. */
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
  // The pointer as it was when this run first read it (undefined: none, or not read yet).
  #initial: Pointer | undefined;

  constructor(store: BlobStore, name: string, writer: string, startedMs: number = Date.now()) {
    this.store = store;
    this.#name = name;
    this.#writer = writer;
    this.#startedMs = startedMs;
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
   * that writer ran while this one could not see the store.
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
    this.#present = new Set();
    if (pointer) {
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

  /** Publishes `image` from `spool`; the store's pointer must still be what this target last saw. */
  async publish(image: PendingImage, spool: Spool, signal?: AbortSignal): Promise<PublishResult> {
    if (!this.#ready) await this.init(signal, true);
    let pointer = await this.#readPointer(signal);
    if (!samePointer(pointer, this.#expected)) {
      if (pointer && pointer.writer === this.#writer) {
        // This replicator's own pointer: a publish whose answer was lost, or one a crash kept from being
        // recorded. Adopt it; the image is done if the pointer is at or past it.
        await this.init(signal);
        if (pointer.sequence >= image.sequence) return { uploaded: 0, bytes: 0, already: true };
        pointer = this.#expected;
      }
    }
    if (!samePointer(pointer, this.#expected)) {
      throw new TesseraError(
        "CONFLICT",
        `Cannot publish database "${this.#name}" to ${this.store.description}: its pointer moved from sequence ` +
          `${this.#expected?.sequence ?? "none"} to ${pointer?.sequence ?? "none"} (writer ` +
          `"${pointer?.writer ?? ""}") while this replicator ran; another writer publishes this database. ` +
          "Run one replicator (and no tessera sync) per database",
      );
    }
    if (pointer && pointer.sequence >= image.sequence) {
      if (pointer.writer === this.#writer) return { uploaded: 0, bytes: 0, already: true };
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
    let uploaded = 0;
    let bytes = 0;
    const todo = [...new Set(image.ids)].filter((hex) => hex !== ZERO_HEX && !this.#present.has(hex));
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const hex = todo[next++] as string;
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
          uploaded++;
          bytes += sent;
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));

    const ids = image.ids.map(hexToId);
    const { list, indexChunks } = buildChunkList(ids);
    const indexIds = await chunkIds(indexChunks);
    for (const [k, chunk] of indexChunks.entries()) {
      bytes += await uploader.ensure(
        this.store,
        chunkKey(indexIds[k] as Uint8Array),
        () => encodeChunk(chunk),
        {
          signal,
        },
      );
    }
    await uploader.settle({ signal });
    const manifest: Manifest = {
      identity: { name: this.#name, hostname: image.hostname, sourcePath: image.sourcePath },
      sequence: image.sequence,
      createdMs: image.createdMs,
      sourceMtimeMs: image.sourceMtimeMs,
      pageSize: image.pageSize,
      imageLength: image.imageLength,
      chunkSize: image.chunkSize,
      imageSha256: image.imageSha256 ? hexBytes(image.imageSha256) : new Uint8Array(32),
      chunk0: pendingChunk0(image),
      chunks: list,
    };
    const manifestBytes = await encodeManifest(manifest);
    const manifestSha256 = new Uint8Array(
      await crypto.subtle.digest("SHA-256", manifestBytes as Uint8Array<ArrayBuffer>),
    );
    await putManifestOnce(this.store, manifestKey(this.#name, image.sequence), manifestBytes, signal);
    const next_: Pointer = {
      sequence: image.sequence,
      manifestSha256,
      createdMs: image.createdMs,
      writer: this.#writer,
    };
    await this.store.put(pointerKey(this.#name), await encodePointer(next_), { signal });
    bytes += manifestBytes.length;
    this.#expected = next_;
    this.#present = new Set(image.ids);
    for (const id of indexIds) this.#present.add(idToHex(id));
    return { uploaded, bytes, already: false };
  }

  async #readPointer(signal?: AbortSignal): Promise<Pointer | undefined> {
    const key = pointerKey(this.#name);
    const got = await this.store.get(key, { signal });
    if (got.status !== "ok") return undefined;
    return await decodePointer(got.body, { what: `${this.store.description} ${key}` });
  }
}

function samePointer(a: Pointer | undefined, b: Pointer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.sequence === b.sequence && a.writer === b.writer &&
    toHex(a.manifestSha256) === toHex(b.manifestSha256);
}

function hexBytes(hex: string): Uint8Array {
  return hexToId(hex);
}
