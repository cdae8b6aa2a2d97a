/**
 * The behaviour every way of reading an image must show, as one suite each consumer's test file runs: the
 * reader itself, a restore to a file, the wasm replica's in-memory image, the native replica's generation
 * file, and directory snapshot verification all read through `readImage`, and must all rebuild the same
 * bytes, fetch only what they lack, and fail the same way.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { encodeChunk } from "../../src/chunk/codec.ts";
import { idsEqual, idToHex, ZERO_ID } from "../../src/chunk/ids.ts";
import { encodeManifest, encodePointer } from "../../src/manifest/codec.ts";
import { chunkListIndexIds } from "../../src/manifest/chunk_list.ts";
import { imageDigest } from "../../src/manifest/digest.ts";
import { chunkKey, manifestKey, packKey, pointerKey } from "../../src/manifest/keys.ts";
import type { ChunkId, Manifest } from "../../src/manifest/types.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import type { BlobStore, GetOptions, GetResult } from "../../src/store/types.ts";
import { rejectsWithCode } from "../_helpers/assert.ts";
import { PassThroughStore } from "../_helpers/counting.ts";
import { makeImage, type Published, publishImage } from "../_helpers/publish.ts";

/** Options of {@linkcode ImageReaderSubject.read}. */
export interface SubjectReadOptions {
  concurrency: number;
  signal?: AbortSignal | undefined;
}

/** What a subject read. */
export interface ReadOutcome {
  /** The image as the subject holds it, when it holds one. */
  image?: Uint8Array | undefined;
  /** The image's SHA-256 (hex) as the subject computed it, when it hashes. */
  sha256?: string | undefined;
  /** Chunks the subject fetched from the store. */
  fetched: number;
}

/** One reader under test. Reads on one subject may build on each other, as a replica's refreshes do. */
export interface ImageReaderSubject {
  read(store: BlobStore, manifest: Manifest, options: SubjectReadOptions): Promise<ReadOutcome>;
  close(): Promise<void>;
}

/** A consumer of the image reader, as the suite runs it. */
export interface ImageReaderFixture {
  /** A new subject with nothing read yet. */
  open(): Promise<ImageReaderSubject>;
  /** The subject keeps what it read, so a later read fetches only the chunks it lacks. */
  incremental: boolean;
  /** Chunk 0 is served with bytes 18-19, 24-27 and 92-95 rewritten (`servedHeader`). */
  servedHeader: boolean;
}

const KiB = 1024;
const SERVED = new Set([18, 19, 24, 25, 26, 27, 92, 93, 94, 95]);

interface Shape {
  what: string;
  length: number;
  chunkSize: number;
  pageSize?: number;
  zeroChunks?: number[];
}

const SHAPES: Shape[] = [
  { what: "an empty image", length: 0, chunkSize: 4 * KiB },
  { what: "one page, chunk 0 only", length: 4 * KiB, chunkSize: 64 * KiB },
  {
    what: "zero chunks and a short last chunk",
    length: 5 * 16 * KiB + 4 * KiB,
    chunkSize: 16 * KiB,
    zeroChunks: [2, 3],
  },
  {
    what: "a zero last chunk",
    length: 3 * 16 * KiB + 512,
    chunkSize: 16 * KiB,
    pageSize: 512,
    zeroChunks: [3],
  },
  {
    what: "an indexed chunk list with a short last chunk",
    length: 700 * 4 * KiB + KiB,
    chunkSize: 4 * KiB,
    pageSize: KiB,
    zeroChunks: [5, 600],
  },
];

/** Runs the image reader suite against `fixture`. */
export function imageReaderConformance(fixture: ImageReaderFixture): void {
  const subjects: ImageReaderSubject[] = [];
  const open = async () => {
    const subject = await fixture.open();
    subjects.push(subject);
    return subject;
  };
  after(async () => {
    for (const subject of subjects) await subject.close();
  });

  const check = (outcome: ReadOutcome, image: Uint8Array) => {
    assert.ok(outcome.image !== undefined || outcome.sha256 !== undefined, "the subject shows what it read");
    if (outcome.image) assertImage(outcome.image, image, fixture.servedHeader);
    if (outcome.sha256 !== undefined) assert.equal(outcome.sha256, sha256(image));
  };

  for (const shape of SHAPES) {
    for (const packBytes of [undefined, 64 * KiB]) {
      const layout = packBytes ? "in 64 KiB packs" : "each chunk its own object";
      it(`reads an image whole: ${shape.what}, ${layout}`, async () => {
        const store = new WatchedStore(new MemoryStore());
        const image = makeImage(shape.length, { ...shape, seed: shape.length + 1 });
        const { manifest, ids, packKeys } = await publishImage(store, image, {
          name: "shapes",
          sequence: 1,
          chunkSize: shape.chunkSize,
          ...(shape.pageSize ? { pageSize: shape.pageSize } : {}),
          packBytes,
        });
        const subject = await open();
        store.gets.length = 0;
        const outcome = await subject.read(store, manifest, { concurrency: 4 });
        check(outcome, image);
        assert.equal(
          outcome.fetched,
          stored(ids).size,
          "every stored chunk once, zero chunks and chunk 0 never",
        );
        if (packBytes) {
          // Neighbours in a pack come with one ranged GET: at most a few per pack, never one per chunk.
          const packGets = store.gets.filter((key) => key.startsWith("packs/"));
          assert.ok(
            packGets.length <= 2 * packKeys.length + 4,
            `${packGets.length} GETs of ${packKeys.length} packs`,
          );
          assert.equal(
            store.gets.filter((key) => key.startsWith("chunks/")).length,
            chunkListIndexIds(manifest.chunks).length,
            "no chunk objects read but the index chunks",
          );
        }
      });
    }
  }

  it("reads only the chunks it lacks when it holds an earlier image", async () => {
    const store = new MemoryStore();
    const chunkSize = 4 * KiB;
    const a = makeImage(40 * chunkSize, { chunkSize, seed: 11 });
    // b: chunks 3 and 7 changed, chunk 5 zeroed, one chunk more; c: chunks 7 and 12 changed again.
    const b = new Uint8Array(41 * chunkSize);
    b.set(a);
    b.set(makeImage(chunkSize, { chunkSize, seed: 12 }), 3 * chunkSize);
    b.set(makeImage(chunkSize, { chunkSize, seed: 13 }), 7 * chunkSize);
    b.fill(0, 5 * chunkSize, 6 * chunkSize);
    b.set(makeImage(chunkSize, { chunkSize, seed: 14 }), 40 * chunkSize);
    const c = b.slice();
    c.set(makeImage(chunkSize, { chunkSize, seed: 15 }), 7 * chunkSize);
    c.set(makeImage(chunkSize, { chunkSize, seed: 16 }), 12 * chunkSize);
    const subject = await open();
    let before = new Set<string>();
    for (const [k, image] of [a, b, c].entries()) {
      const { manifest, ids } = await publishImage(store, image, {
        name: "grows",
        sequence: k + 1,
        chunkSize,
        // The first image in packs, the changes as their own objects: a manifest may hold both.
        packBytes: k === 0 ? 32 * KiB : undefined,
      });
      const outcome = await subject.read(store, manifest, { concurrency: 3 });
      check(outcome, image);
      const now = stored(ids);
      const lacking = [...now].filter((hex) => !before.has(hex)).length;
      assert.equal(outcome.fetched, fixture.incremental ? lacking : now.size, `image ${k + 1}`);
      before = now;
    }
  });

  describe("fails naming the chunk", () => {
    let store: MemoryStore;
    let published: Published;
    let image: Uint8Array;

    before(async () => {
      store = new MemoryStore();
      image = makeImage(60 * 4 * KiB, { chunkSize: 4 * KiB, seed: 21 });
      published = await publishImage(store, image, { name: "broken", sequence: 4, chunkSize: 4 * KiB });
    });

    it("a missing chunk with NOT_FOUND", async () => {
      const copy = await copyStore(store);
      const missing = published.ids[37]!;
      await copy.delete(chunkKey(missing));
      const subject = await open();
      await rejectsWithCode(
        subject.read(copy, published.manifest, { concurrency: 4 }),
        "NOT_FOUND",
        new RegExp(idToHex(missing)),
      );
    });

    it("a chunk holding another chunk's bytes with CHECKSUM_MISMATCH, a damaged one with CORRUPT_CHUNK", async () => {
      const copy = await copyStore(store);
      const victim = published.ids[23]!;
      await copy.put(chunkKey(victim), encodeChunk(image.subarray(4 * KiB, 8 * KiB)));
      const subject = await open();
      await rejectsWithCode(
        subject.read(copy, published.manifest, { concurrency: 4 }),
        "CHECKSUM_MISMATCH",
        new RegExp(idToHex(victim)),
      );
      await copy.put(chunkKey(victim), new Uint8Array(50));
      await rejectsWithCode(
        (await open()).read(copy, published.manifest, { concurrency: 4 }),
        "CORRUPT_CHUNK",
        new RegExp(idToHex(victim)),
      );
    });

    it("a chunk of another length than the image places there with CORRUPT_MANIFEST", async () => {
      const copy = await copyStore(store);
      // A sound chunk object under its own id, listed where the image has room for twice as many bytes.
      const half = image.slice(9 * 4 * KiB, 9 * 4 * KiB + 2 * KiB);
      const id = idOf(half);
      await copy.put(chunkKey(id), encodeChunk(half));
      const manifest = await republish(copy, await withChunk(published.manifest, 9, id));
      await rejectsWithCode(
        (await open()).read(copy, manifest, { concurrency: 4 }),
        "CORRUPT_MANIFEST",
        new RegExp(idToHex(id)),
      );
    });

    it("a manifest whose chunk list is not the one its image digest names with CHECKSUM_MISMATCH", async () => {
      const copy = await copyStore(store);
      const ids = [...(published.manifest.chunks as { ids: ChunkId[] }).ids];
      [ids[3], ids[4]] = [ids[4]!, ids[3]!];
      const manifest = await republish(copy, { ...published.manifest, chunks: { kind: "inline", ids } });
      await rejectsWithCode(
        (await open()).read(copy, manifest, { concurrency: 4 }),
        "CHECKSUM_MISMATCH",
        /digest/,
      );
    });
  });

  describe("fails naming the chunk, in packs", () => {
    let store: MemoryStore;
    let published: Published;
    let image: Uint8Array;

    before(async () => {
      store = new MemoryStore();
      image = makeImage(60 * 4 * KiB, { chunkSize: 4 * KiB, seed: 22 });
      published = await publishImage(store, image, {
        name: "broken",
        sequence: 4,
        chunkSize: 4 * KiB,
        packBytes: 64 * KiB,
      });
      assert.ok(published.packKeys.length >= 3, "the image spans several packs");
    });

    it("a missing pack with NOT_FOUND, naming a chunk and the pack", async () => {
      const copy = await copyStore(store);
      const where = published.locations[30]!;
      await copy.delete(packKey(where.pack));
      await rejectsWithCode(
        (await open()).read(copy, published.manifest, { concurrency: 4 }),
        "NOT_FOUND",
        new RegExp(idToHex(where.pack)),
      );
    });

    it("a flipped byte inside one chunk of a pack fails that chunk, naming it", async () => {
      const copy = await copyStore(store);
      const victim = published.ids[31]!;
      const where = published.locations[30]!;
      const got = await copy.get(packKey(where.pack));
      assert.ok(got.status === "ok");
      const damaged = got.body.slice();
      damaged[where.offset + where.length - 5]! ^= 0xff;
      await copy.put(packKey(where.pack), damaged);
      await rejectsWithCode(
        (await open()).read(copy, published.manifest, { concurrency: 4 }),
        "CHECKSUM_MISMATCH",
        new RegExp(idToHex(victim)),
      );
    });

    it("a pack cut short fails the chunks it lost", async () => {
      const copy = await copyStore(store);
      const last = published.locations.at(-1)!;
      const got = await copy.get(packKey(last.pack));
      assert.ok(got.status === "ok");
      await copy.put(packKey(last.pack), got.body.subarray(0, last.offset + 10));
      await rejectsWithCode(
        (await open()).read(copy, published.manifest, { concurrency: 4 }),
        "CORRUPT_CHUNK",
        new RegExp(idToHex(published.ids.at(-1)!)),
      );
    });
  });

  it("stops at an abort, rejecting with its reason once no read runs", async () => {
    const image = makeImage(80 * 4 * KiB, { chunkSize: 4 * KiB, seed: 31 });
    const inner = new MemoryStore();
    const { manifest } = await publishImage(inner, image, {
      name: "aborted",
      sequence: 1,
      chunkSize: 4 * KiB,
    });
    const store = new WatchedStore(inner);
    const controller = new AbortController();
    store.onChunkGet = (count) => {
      if (count === 20) controller.abort();
    };
    const subject = await open();
    await assert.rejects(
      subject.read(store, manifest, { concurrency: 4, signal: controller.signal }),
      (error: Error) => error.name === "AbortError",
    );
    assert.equal(store.inFlight, 0, "no chunk read runs on after the rejection");
    assert.ok(store.chunkGets < 79, `${store.chunkGets} chunks read after the abort at 20`);
    await assert.rejects(
      (await open()).read(store, manifest, { concurrency: 4, signal: AbortSignal.abort() }),
      (error: Error) => error.name === "AbortError",
    );
  });

  it("keeps at most `concurrency` chunk reads in flight, and uses them", async () => {
    const image = makeImage(40 * 4 * KiB, { chunkSize: 4 * KiB, seed: 41 });
    const inner = new MemoryStore();
    const { manifest } = await publishImage(inner, image, {
      name: "bounded",
      sequence: 1,
      chunkSize: 4 * KiB,
    });
    for (const concurrency of [1, 3]) {
      const store = new WatchedStore(inner, { delayMs: 3 });
      const outcome = await (await open()).read(store, manifest, { concurrency });
      check(outcome, image);
      assert.equal(store.maxInFlight, concurrency);
    }
  });
}

/** Asserts `actual` is `expected`, except the served header bytes of chunk 0 when `served`. */
function assertImage(actual: Uint8Array, expected: Uint8Array, served: boolean): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] === expected[i] || (served && SERVED.has(i))) continue;
    assert.fail(`first difference at byte ${i}`);
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function idOf(bytes: Uint8Array): ChunkId {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** The stored (non-zero) chunk ids after chunk 0, each once, in hex. */
function stored(ids: readonly ChunkId[]): Set<string> {
  return new Set(ids.slice(1).filter((id) => !idsEqual(id, ZERO_ID)).map(idToHex));
}

/** Publishes `manifest` as the next snapshot of its database in `store`, pointer included. */
async function republish(store: BlobStore, manifest: Manifest): Promise<Manifest> {
  const next = { ...manifest, sequence: manifest.sequence + 1 };
  const bytes = await encodeManifest(next);
  await store.put(manifestKey(next.identity.name, next.sequence), bytes);
  const manifestSha256 = idOf(bytes);
  const pointer = { sequence: next.sequence, manifestSha256, createdMs: next.createdMs, writer: "test" };
  await store.put(pointerKey(next.identity.name), await encodePointer(pointer));
  return next;
}

/** `manifest` with chunk `index` (1-based) listed as `id`, as a writer would list it (its image digest
 * follows); the list must be inline. */
async function withChunk(manifest: Manifest, index: number, id: ChunkId): Promise<Manifest> {
  assert.equal(manifest.chunks.kind, "inline");
  const ids = [...(manifest.chunks as { ids: ChunkId[] }).ids];
  ids[index - 1] = id;
  const { imageLength, chunkSize, chunk0 } = manifest;
  return {
    ...manifest,
    imageDigest: await imageDigest(imageLength, chunkSize, chunk0, ids),
    chunks: { kind: "inline", ids },
  };
}

async function copyStore(from: MemoryStore): Promise<MemoryStore> {
  const to = new MemoryStore();
  for await (const item of from.list("")) {
    if (item.type !== "object") continue;
    const got = await from.get(item.key);
    if (got.status === "ok") await to.put(item.key, got.body);
  }
  return to;
}

/** A store that counts the chunk reads in flight, can slow each down, and reports every chunk read. */
class WatchedStore extends PassThroughStore {
  inFlight = 0;
  maxInFlight = 0;
  chunkGets = 0;
  /** The key of every GET, in order. */
  readonly gets: string[] = [];
  onChunkGet: ((count: number) => void) | undefined;
  readonly #delayMs: number;

  constructor(inner: BlobStore, options: { delayMs?: number } = {}) {
    super(inner);
    this.#delayMs = options.delayMs ?? 0;
  }

  override async get(key: string, options?: GetOptions): Promise<GetResult> {
    this.gets.push(key);
    if (!key.startsWith("chunks/") && !key.startsWith("packs/")) return await this.inner.get(key, options);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      this.onChunkGet?.(++this.chunkGets);
      if (this.#delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#delayMs));
      options?.signal?.throwIfAborted();
      return await this.inner.get(key, options);
    } finally {
      this.inFlight--;
    }
  }
}
