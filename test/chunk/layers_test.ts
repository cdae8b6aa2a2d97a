import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readThrough } from "../../src/chunk/layers.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { storeLocator } from "../../src/manifest/locate.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { assertBytes, rejectsWithCode } from "../_helpers/assert.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { makeDb } from "../_helpers/writer.ts";
import { objectKeys } from "../history/_fixtures.ts";

describe("readThrough()", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("layers");
  });
  after(() => removeDir(dir));

  it("reads what the primary store lost from the next store, in that store's own packs", async () => {
    const db = join(dir, "app.db");
    await makeDb(db, 300, { payload: 2000 });
    const [a, b] = [new LocalStore(join(dir, "a")), new LocalStore(join(dir, "b"))];
    const { name } = await syncDatabase(db, { stores: [a, b], hostname: "h", spoolDir: join(dir, "spool") });
    const packsOf = async (store: LocalStore) =>
      (await objectKeys(store)).filter((k) => k.startsWith("packs/"));
    const [packsA, packsB] = [await packsOf(a), await packsOf(b)];
    assert.ok(
      packsA.length > 0 && !packsA.some((key) => packsB.includes(key)),
      "each store holds its own packs",
    );
    // Store A loses its pack (a lifecycle rule, a mistaken delete); B holds every chunk.
    for (const key of packsA) await a.delete(key);
    const { manifest } = await loadLatest(a, name);
    const out = join(dir, "restored.db");
    await restoreImage({ manifest, chunks: readThrough(a, { stores: [a, b], locate: storeLocator }), out });
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "restored");
    // Asked only at A's places, B cannot help.
    await rejectsWithCode(
      restoreImage({ manifest, chunks: readThrough(a, { stores: [a, b] }), out: join(dir, "never.db") }),
      "NOT_FOUND",
    );
  });
});
