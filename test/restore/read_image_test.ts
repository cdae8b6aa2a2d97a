import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { idsEqual, idToHex } from "../../src/chunk/ids.ts";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import type { ChunkId } from "../../src/manifest/types.ts";
import { type ImageChunk, readImage } from "../../src/restore/read_image.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { rejectsWithCode } from "../_helpers/assert.ts";
import { CountingChunkSource, PassThroughStore } from "../_helpers/counting.ts";
import type { GetOptions, GetResult } from "../../src/store/types.ts";
import { makeImage, publishImage } from "../_helpers/publish.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { imageReaderConformance, type ImageReaderFixture } from "./read_image_conformance.ts";

const KiB = 1024;

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The reader itself, into memory; a chunk the previous image listed at the same place is kept there. */
const inMemory: ImageReaderFixture = {
  incremental: true,
  servedHeader: false,
  open: async () => {
    let image = new Uint8Array(0);
    let ids: ChunkId[] = [];
    return {
      read: async (store, manifest, options) => {
        const next = new Uint8Array(manifest.imageLength);
        next.set(image.subarray(0, Math.min(image.length, next.length)));
        const previous = ids;
        const read = await readImage(manifest, new StoreChunkSource(store), {
          have: (id, index) => previous[index - 1] !== undefined && idsEqual(previous[index - 1]!, id),
          sink: ({ bytes, offset }) => next.set(bytes, offset),
          hasher: () => createHash("sha256"),
          ...options,
        });
        image = next;
        ids = read.ids;
        return { image, sha256: read.sha256, fetched: read.fetched };
      },
      close: async () => {},
    };
  },
};

/** `restoreImage`, into a new file each time; a failed restore must leave no file behind. */
const toFile: ImageReaderFixture = {
  incremental: false,
  servedHeader: false,
  open: async () => {
    const dir = await makeTempDir("read-image");
    let n = 0;
    return {
      read: async (store, manifest, options) => {
        const out = join(dir, `${++n}.db`);
        try {
          const result = await restoreImage({
            manifest,
            chunks: new StoreChunkSource(store),
            out,
            ...options,
          });
          const image = new Uint8Array(await readFile(out));
          return { image, sha256: result.sha256, fetched: result.chunksFetched };
        } catch (error) {
          assert.deepEqual(await readdir(dir), Array.from({ length: n - 1 }, (_, i) => `${i + 1}.db`).sort());
          throw error;
        }
      },
      close: () => removeDir(dir),
    };
  },
};

describe("readImage() into memory", () => imageReaderConformance(inMemory));
describe("readImage() through restoreImage() into a file", () => imageReaderConformance(toFile));

describe("readImage()", () => {
  it("reads a chunk that repeats in runs read at once, however the runs finish", async () => {
    // 33 distinct chunks, then chunks 32 and 33 again: three runs, the last two sharing reads with the first.
    const chunkSize = 4096;
    const distinct = makeImage(34 * chunkSize, { chunkSize, seed: 71 });
    const image = new Uint8Array(36 * chunkSize);
    image.set(distinct);
    image.set(distinct.subarray(32 * chunkSize, 34 * chunkSize), 34 * chunkSize);
    const inner = new MemoryStore();
    const { manifest } = await publishImage(inner, image, {
      name: "repeats",
      sequence: 1,
      chunkSize,
      packBytes: 1 << 20,
    });
    // Bigger ranged GETs take longer, as on any network: the long first run finishes last.
    class Slow extends PassThroughStore {
      override async get(key: string, options?: GetOptions): Promise<GetResult> {
        const length = options?.range?.length ?? 0;
        await new Promise((resolve) => setTimeout(resolve, length > 3 * chunkSize ? 40 : 2));
        return await this.inner.get(key, options);
      }
    }
    for (const store of [inner, new Slow(inner)]) {
      const out = new Uint8Array(image.length);
      const read = await readImage(manifest, new StoreChunkSource(store), {
        sink: ({ bytes, offset }) => out.set(bytes, offset),
      });
      assert.ok(read.fetched >= 33 && read.fetched <= 35, `${read.fetched} chunks fetched`);
      assert.deepEqual(out, image);
    }
  });

  it("hands over the bytes `have` gives without fetching them, and hashes them with the rest", async () => {
    const store = new MemoryStore();
    const image = makeImage(10 * 4 * KiB, { chunkSize: 4 * KiB, seed: 3 });
    const { manifest } = await publishImage(store, image, { name: "have", sequence: 1, chunkSize: 4 * KiB });
    const source = new CountingChunkSource(new StoreChunkSource(store));
    const seen: ImageChunk["from"][] = [];
    const read = await readImage(manifest, source, {
      have: (_id, index) => index % 2 === 0 ? image.slice(index * 4 * KiB, (index + 1) * 4 * KiB) : undefined,
      sink: (chunk) => void (seen[chunk.index] = chunk.from),
      hasher: () => createHash("sha256"),
    });
    assert.deepEqual(seen, [
      "manifest",
      "fetched",
      "have",
      "fetched",
      "have",
      "fetched",
      "have",
      "fetched",
      "have",
      "fetched",
    ]);
    assert.equal(source.calls, 5);
    assert.equal(read.fetched, 5);
    assert.equal(read.sha256, sha256(image));
    assert.equal(read.imageVerified, true);
  });

  it("makes no hash when `have` skips a chunk, and reports the image unverified", async () => {
    const store = new MemoryStore();
    const image = makeImage(4 * 4 * KiB, { chunkSize: 4 * KiB, seed: 4 });
    const { manifest } = await publishImage(store, image, { name: "skip", sequence: 1, chunkSize: 4 * KiB });
    const done: number[] = [];
    const read = await readImage(manifest, new StoreChunkSource(store), {
      have: (_id, index) => index === 2,
      hasher: () => createHash("sha256"),
      onProgress: (n, total) => done.push(n, total),
    });
    assert.equal(read.sha256, undefined);
    assert.equal(read.imageVerified, false);
    assert.equal(read.fetched, 2);
    assert.deepEqual(done, [1, 4, 2, 4, 3, 4, 4, 4]);
  });

  it("names the failed check in its own words, or the caller's through `describe`, keeping the code", async () => {
    const store = new MemoryStore();
    const image = makeImage(6 * 4 * KiB, { chunkSize: 4 * KiB, seed: 5 });
    const { manifest, ids } = await publishImage(store, image, {
      name: "words",
      sequence: 2,
      chunkSize: 4 * KiB,
    });
    const hex = idToHex(ids[4]!);
    await store.delete(`chunks/${hex.slice(0, 2)}/${hex}`);
    await rejectsWithCode(
      readImage(manifest, new StoreChunkSource(store)),
      "NOT_FOUND",
      `Cannot read snapshot 2 of database "words": chunk ${hex} (chunk #4) is missing from memory`,
    );
    await rejectsWithCode(
      readImage(manifest, new StoreChunkSource(store), {
        doing: "check app",
        describe: (problem) => problem.kind === "missing" ? `chunk #${problem.index} is gone` : undefined,
      }),
      "NOT_FOUND",
      "chunk #4 is gone",
    );
    const wrong = { ...manifest, imageSha256: new Uint8Array(32).fill(0xab) };
    const restored = makeImage(6 * 4 * KiB, { chunkSize: 4 * KiB, seed: 5 });
    await rejectsWithCode(
      readImage(wrong, new StoreChunkSource(store), {
        doing: "check app",
        have: (_id, index) => index === 4 ? restored.slice(4 * 4 * KiB, 5 * 4 * KiB) : undefined,
        hasher: () => createHash("sha256"),
      }),
      "CHECKSUM_MISMATCH",
      `Cannot check app: the rebuilt image's SHA-256 is ${sha256(image)}, but the manifest says ${
        "ab".repeat(32)
      }`,
    );
  });

  it("rejects a concurrency that is not a positive integer", async () => {
    const store = new MemoryStore();
    const { manifest } = await publishImage(store, new Uint8Array(4096).fill(1), {
      name: "args",
      sequence: 1,
      chunkSize: 4096,
    });
    for (const concurrency of [0, 1.5, Number.NaN]) {
      await assert.rejects(readImage(manifest, new StoreChunkSource(store), { concurrency }), RangeError);
    }
  });

  it("imports no node: module and nothing from a layer above the read side", async () => {
    const source = await readFile(new URL("../../src/restore/read_image.ts", import.meta.url), "utf8");
    const imports = [...source.matchAll(/^import[^"]*"([^"]+)";$/gm)].map((m) => m[1]!);
    assert.ok(imports.length > 0);
    for (const path of imports) {
      assert.ok(!path.startsWith("node:"), path);
      assert.ok(!/\/(replica|replicate|history|cli|config|snapshot)\//.test(path), path);
    }
  });
});
