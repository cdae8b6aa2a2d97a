import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadManifestFile } from "../../src/manifest/manifest_file.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { rejectsWithCode } from "../_helpers/assert.ts";
import { makeImage, publishImage } from "../_helpers/publish.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

describe("manifest files", () => {
  let dir: string;

  before(async () => {
    dir = await makeTempDir("manifest-file");
  });
  after(() => removeDir(dir));

  it("loadManifestFile() reads a manifest copied to a file, and names the file when it cannot", async () => {
    const image = makeImage(3 * 4096, { chunkSize: 4096, seed: 10 });
    const published = await publishImage(new MemoryStore(), image, {
      name: "copied",
      sequence: 4,
      chunkSize: 4096,
    });
    const path = join(dir, "manifest.bin");
    await writeFile(path, published.manifestBytes);
    const loaded = await loadManifestFile(path);
    assert.deepEqual(loaded.manifest, published.manifest);
    assert.equal(loaded.key, path);
    await rejectsWithCode(loadManifestFile(join(dir, "missing.bin")), "NOT_FOUND", /missing\.bin/);
    const damaged = published.manifestBytes.slice();
    damaged[20] = damaged[20]! ^ 1;
    await writeFile(path, damaged);
    await rejectsWithCode(loadManifestFile(path), "CORRUPT_MANIFEST", /manifest\.bin/);
  });
});
