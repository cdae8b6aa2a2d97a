import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { TesseraError } from "../../src/errors.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { PutOptions } from "../../src/store/types.ts";
import { captureImage } from "../../src/write/capture.ts";
import { PublishTarget } from "../../src/write/publish.ts";
import { Spool } from "../../src/write/spool.ts";
import { assertBytes } from "../_helpers/assert.ts";
import { PassThroughStore } from "../_helpers/counting.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { makeDb } from "../_helpers/writer.ts";
import { mkdir, readFile } from "node:fs/promises";

/** A real directory store whose pointer PUTs fail `failures` times after the write landed (an answer lost). */
class LostAnswers extends PassThroughStore {
  failures = 0;
  override async put(key: string, body: Uint8Array, options?: PutOptions) {
    const result = await super.put(key, body, options);
    if (key.endsWith("/pointer") && this.failures-- > 0) {
      throw new TesseraError("STORE_IO", `the connection was reset after writing ${key}`);
    }
    return result;
  }
}

describe("PublishTarget", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("publish");
  });
  after(() => removeDir(dir));

  for (const lost of ["manifest", "pointer"] as const) {
    it(`publishes an image again after the ${lost} PUT's answer was lost, keeping what landed`, async () => {
      const base = join(dir, lost);
      const db = join(base, "app.db");
      await mkdir(base, { recursive: true });
      await makeDb(db, 200, { payload: 2000 });
      const inner = new LocalStore(join(base, "store"));
      const store = new LostAnswers(inner);
      const { spool, release } = await Spool.claim(join(base, "spool"), "app", "replicate", db);
      try {
        const { image } = await captureImage(db, spool, { chunkSize: 65536, hostname: "", nextSequence: 1 });
        assert.ok(image);
        const target = new PublishTarget(store, "app", "writer-1");
        await target.init();
        if (lost === "pointer") store.failures = 1;
        else {
          // The manifest landed, then the answer was lost: the retry must not call itself another writer.
          const failing = new (class extends PassThroughStore {
            override async put(key: string, body: Uint8Array, options?: PutOptions) {
              const result = await super.put(key, body, options);
              if (key.includes("/manifests/")) throw new TesseraError("STORE_IO", "reset after the manifest");
              return result;
            }
          })(inner);
          await assert.rejects(
            new PublishTarget(failing, "app", "writer-1").publish(image, spool),
            /reset after/,
          );
        }
        if (lost === "pointer") await assert.rejects(target.publish(image, spool), /connection was reset/);
        const published = await target.publish(image, spool);
        assert.equal(published.pointer.sequence, 1);
        const { manifest } = await loadLatest(inner, "app");
        const out = join(base, "restored.db");
        await restoreImage({ manifest, chunks: new StoreChunkSource(inner), out });
        assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "restored");
      } finally {
        await release();
      }
    });
  }
});
