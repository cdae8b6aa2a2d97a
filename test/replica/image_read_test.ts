import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe } from "node:test";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { type GenerationFile, patchGenerationFile } from "../../src/replica/generation_file.ts";
import { ChunkMemory, prepareImage, releaseImage, type SnapshotImage } from "../../src/replica/image.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { imageReaderConformance, type ImageReaderFixture } from "../restore/read_image_conformance.ts";

/** The wasm engine's images: each read keeps the previous image until it is done, as a refresh does, and a
 * failed read leaves the pool as it was. */
const wasmImage: ImageReaderFixture = {
  incremental: true,
  servedHeader: true,
  open: async () => {
    const memory = new ChunkMemory();
    let held: SnapshotImage | undefined;
    return {
      read: async (store, manifest, options) => {
        const before = { count: memory.count, bytes: memory.sizeBytes };
        let image: SnapshotImage;
        try {
          image = await prepareImage({ manifest, chunks: new StoreChunkSource(store), memory, ...options });
        } catch (error) {
          assert.deepEqual(
            { count: memory.count, bytes: memory.sizeBytes },
            before,
            "nothing stays retained",
          );
          throw error;
        }
        if (held) releaseImage(held, memory);
        held = image;
        return { image: flatten(image, memory), fetched: image.chunksFetched };
      },
      close: async () => {
        if (held) releaseImage(held, memory);
        assert.equal(memory.count, 0, "the last image took its chunks along");
      },
    };
  },
};

/** The native engine's generation files: two, patched in turn, so a read finds unchanged chunks in place
 * or in the other file. */
const nativeFile: ImageReaderFixture = {
  incremental: true,
  servedHeader: true,
  open: async () => {
    const dir = await makeTempDir("generation");
    const files: GenerationFile[] = [1, 2].map((k) => ({
      path: join(dir, `generation-${k}.db`),
      ids: undefined,
      chunkSize: 0,
    }));
    let turn = 0;
    return {
      read: async (store, manifest, options) => {
        const file = files[turn++ % files.length]!;
        const fetched = await patchGenerationFile(file, manifest, {
          chunks: new StoreChunkSource(store),
          others: files,
          ...options,
        });
        return { image: new Uint8Array(await readFile(file.path)), fetched };
      },
      close: () => removeDir(dir),
    };
  },
};

describe("prepareImage() reads through readImage()", () => imageReaderConformance(wasmImage));
describe("patchGenerationFile() reads through readImage()", () => imageReaderConformance(nativeFile));

function flatten(image: SnapshotImage, memory: ChunkMemory): Uint8Array {
  const bytes = new Uint8Array(image.size);
  bytes.set(image.chunk0);
  image.keys.forEach((key, i) => {
    if (key !== "") bytes.set(memory.get(key)!, (i + 1) * image.chunkSize);
  });
  return bytes;
}
