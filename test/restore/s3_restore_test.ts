import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { idToHex } from "../../src/chunk/ids.ts";
import { LayeredChunkSource, MemoryChunkCache, StoreChunkSource } from "../../src/chunk/source.ts";
import { DirectoryChunkCache } from "../../src/chunk/directory_cache.ts";
import { TesseraError } from "../../src/errors.ts";
import { chunkKey } from "../../src/manifest/keys.ts";
import { listHistory, loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { S3Store } from "../../src/store/s3.ts";
import { CountingStore } from "../_helpers/counting.ts";
import { makeImage, publishImage } from "../_helpers/publish.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const KiB = 1024;

describe("restore from a real S3 server (s3rver)", () => {
  let server: S3TestServer;
  let s3: S3Store;
  let dir: string;

  before(async () => {
    server = await startS3Server();
    s3 = new S3Store({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    }, { prefix: "backups/" });
    dir = await makeTempDir("s3-restore");
  });
  after(async () => {
    await server?.stop();
    await removeDir(dir);
  });

  it("restores the newest snapshot, then again from the warm cache with no chunk GET", async () => {
    const older = makeImage(100 * 4 * KiB, { chunkSize: 4 * KiB, seed: 3 });
    const image = makeImage(620 * 4 * KiB + KiB, { chunkSize: 4 * KiB, zeroChunks: [7, 8, 300], seed: 4 });
    await publishImage(s3, older, { name: "s3-app", sequence: 1, chunkSize: 4 * KiB });
    const published = await publishImage(s3, image, {
      name: "s3-app",
      sequence: 2,
      chunkSize: 4 * KiB,
      pageSize: KiB,
    });
    assert.equal(published.manifest.chunks.kind, "indexed");
    assert.deepEqual((await listHistory(s3, "s3-app")).map((h) => h.sequence), [1, 2]);

    const store = new CountingStore(s3);
    const { manifest, pointer } = await loadLatest(store, "s3-app");
    assert.equal(pointer.sequence, 2);
    const cacheDir = join(dir, "cache");
    const chunks = () =>
      new LayeredChunkSource([
        new MemoryChunkCache({ capacityBytes: 256 * KiB }),
        new DirectoryChunkCache({ directory: cacheDir, capacity: 5000 }),
        new StoreChunkSource(store),
      ]);
    const expected = createHash("sha256").update(image).digest("hex");

    store.reset();
    const first = await restoreImage({
      manifest,
      chunks: chunks(),
      out: join(dir, "first.db"),
      concurrency: 16,
    });
    assert.equal(first.sha256, expected);
    assert.ok(store.gets("chunks/") > 600, `${store.gets("chunks/")} chunk GETs`);
    assert.deepEqual(new Uint8Array(await readFile(join(dir, "first.db"))), image);

    store.reset();
    const second = await restoreImage({ manifest, chunks: chunks(), out: join(dir, "second.db") });
    assert.equal(second.sha256, expected);
    assert.equal(store.gets("chunks/"), 0);
    assert.deepEqual(new Uint8Array(await readFile(join(dir, "second.db"))), image);
  });

  it("a chunk missing from the bucket fails naming the chunk and the bucket, and leaves no file", async () => {
    const image = makeImage(20 * 4 * KiB, { chunkSize: 4 * KiB, seed: 11 });
    const published = await publishImage(s3, image, { name: "s3-gap", sequence: 1, chunkSize: 4 * KiB });
    const missing = published.ids[13]!;
    await s3.delete(chunkKey(missing));
    const folder = join(dir, "gap");
    await mkdir(folder);
    await assert.rejects(
      restoreImage({
        manifest: published.manifest,
        chunks: new StoreChunkSource(s3),
        out: join(folder, "gap.db"),
      }),
      (error: unknown) => {
        assert.ok(error instanceof TesseraError);
        assert.equal(error.code, "NOT_FOUND");
        assert.equal(
          error.message,
          `Cannot restore s3-gap seq 1: chunk ${
            idToHex(missing)
          } (chunk #13) is missing from ${s3.description}`,
        );
        return true;
      },
    );
    assert.deepEqual(await readdir(folder), []);
  });
});
