import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeChunk } from "../../src/chunk/codec.ts";
import { chunkId } from "../../src/chunk/ids.ts";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { TesseraError } from "../../src/errors.ts";
import { collectGarbage } from "../../src/history/gc.ts";
import { pruneDatabase } from "../../src/history/prune.ts";
import { chunkListIndexIds } from "../../src/manifest/chunk_list.ts";
import { chunkKey, manifestKey } from "../../src/manifest/keys.ts";
import { loadLatest, loadSequence } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import type {
  BlobStore,
  HeadResult,
  ListItem,
  ListOptions,
  StoreCallOptions,
} from "../../src/store/types.ts";
import { checkWriterDb } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { assertBytes } from "../_helpers/assert.ts";
import { ageFiles, objectKeys, referencedKeys } from "./_fixtures.ts";
import { makeDb } from "../_helpers/writer.ts";

const DAY = 24 * 3_600_000;
const HOUR = 3_600_000;

/** A real directory store whose objects carry no modification time, as some HTTP servers answer. */
class NoTimeStore extends LocalStore {
  override async head(key: string, options?: StoreCallOptions): Promise<HeadResult> {
    const head = await super.head(key, options);
    return head.status === "ok" ? { ...head, lastModified: undefined } : head;
  }
  override async *list(prefix: string, options?: ListOptions): AsyncGenerator<ListItem> {
    for await (const item of super.list(prefix, options)) {
      yield item.type === "object" ? { ...item, lastModified: undefined } : item;
    }
  }
}

async function assertRestores(store: BlobStore, name: string, source: string, out: string): Promise<void> {
  const { manifest } = await loadLatest(store, name);
  await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  assert.equal((await checkWriterDb(out)).integrity, "ok");
  assertBytes(
    new Uint8Array(await readFile(out)),
    new Uint8Array(await readFile(source)),
    `restored ${name}`,
  );
}

describe("collectGarbage() on a directory store", () => {
  let dir: string;
  let root: string;
  let store: LocalStore;
  let a: string;
  let b: string;
  let nameA: string;
  let nameB: string;
  let orphans: string[];
  let allBefore: string[];
  let young: string;
  let indexKeys: string[];
  const sync = (db: string) =>
    syncDatabase(db, { stores: [store], hostname: "gc-host", spoolDir: join(dir, "spool"), chunkSize: 4096 });

  before(async () => {
    dir = await makeTempDir("gc");
    root = join(dir, "store");
    store = new LocalStore(root);
    a = join(dir, "a.db");
    b = join(dir, "b.db");
    await makeDb(a, 1500, { payload: 1500 });
    await makeDb(b, 150, { payload: 1500 });
    nameA = (await sync(a)).name;
    const change = createClient({ url: `file:${a}` });
    await change.execute("UPDATE items SET payload = zeroblob(1500) WHERE k % 7 != 0");
    change.close();
    // Most chunks change: the publish moves the few left of snapshot 1's pack into its own (repacking), so
    // that pack ends up referenced by no kept snapshot.
    await sync(a);
    nameB = (await sync(b)).name;
    const a1 = await referencedKeys(store, (await loadSequence(store, nameA, 1)).manifest);
    const a2Manifest = (await loadSequence(store, nameA, 2)).manifest;
    assert.equal(a2Manifest.chunks.kind, "indexed", "database A lists its chunks through index chunks");
    indexKeys = chunkListIndexIds(a2Manifest.chunks).map((id) => chunkKey(id));
    const kept = new Set([
      ...await referencedKeys(store, a2Manifest),
      ...await referencedKeys(
        store,
        (await loadLatest(store, nameB)).manifest,
      ),
    ]);
    orphans = [...a1].filter((key) => !kept.has(key)).sort();
    assert.ok(
      orphans.some((key) => key.startsWith("packs/")) && orphans.some((key) => key.startsWith("chunks/")),
      `snapshot 1 alone uses packs and index chunks: ${orphans}`,
    );
    assert.deepEqual((await pruneDatabase(store, nameA, { keepLast: 1 })).deleted.map((e) => e.sequence), [
      1,
    ]);
    await store.put("chunks/README", new TextEncoder().encode("not a chunk"));
    await store.put(`chunks/ab/${"cd".repeat(32)}`, new TextEncoder().encode("folder does not match"));
    await ageFiles(join(root, "chunks"), 3 * DAY);
    await ageFiles(join(root, "packs"), 3 * DAY);
    // An unreferenced chunk written just now: a sync may be about to publish a manifest naming it.
    const bytes = new Uint8Array(randomBytes(4096));
    young = chunkKey(await chunkId(bytes));
    await store.put(young, encodeChunk(bytes));
    allBefore = await objectKeys(store);
  });
  after(() => removeDir(dir));

  it("refuses a grace period shorter than 30 minutes", async () => {
    await assert.rejects(collectGarbage(store, { graceMs: 29 * 60_000 }), (e: Error) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, /grace period of 29m: the shortest is 30m/);
      return true;
    });
  });

  it("never deletes a chunk whose store reports no modification time", async () => {
    const report = await collectGarbage(new NoTimeStore(root), { graceMs: HOUR });
    assert.equal(report.deleted.count, 0);
    assert.equal(report.kept.noTime, orphans.length + 1);
    assert.deepEqual(await objectKeys(store), allBefore);
  });

  it("in a dry run lists exactly the old unreferenced chunks, with their bytes, and deletes nothing", async () => {
    const report = await collectGarbage(store, { graceMs: HOUR, dryRun: true });
    assert.equal(report.dryRun, true);
    assert.deepEqual(report.deleted.chunks.map((c) => c.key), orphans);
    assert.equal(report.deleted.count, orphans.length);
    let bytes = 0;
    for (const key of orphans) bytes += (await store.head(key) as { size: number }).size;
    assert.equal(report.deleted.bytes, bytes);
    assert.equal(report.kept.young, 1);
    assert.deepEqual(report.foreign.sort(), ["chunks/README", `chunks/ab/${"cd".repeat(32)}`]);
    assert.equal(report.databases, 2);
    assert.equal(report.manifests, 2);
    assert.equal(report.chunks.missing, 0);
    assert.deepEqual(await objectKeys(store), allBefore);
  });

  it("deletes exactly those, keeps index chunks and young chunks, and every kept snapshot still restores", async () => {
    const report = await collectGarbage(store, { graceMs: HOUR });
    assert.deepEqual(report.deleted.chunks.map((c) => c.key), orphans);
    const after = await objectKeys(store);
    assert.deepEqual(after, allBefore.filter((key) => !orphans.includes(key)));
    assert.ok(after.includes(young));
    for (const key of indexKeys) assert.ok(after.includes(key), `index chunk ${key} kept`);
    await assertRestores(store, nameA, a, join(dir, "a-restored.db"));
    await assertRestores(store, nameB, b, join(dir, "b-restored.db"));
    const again = await collectGarbage(store, { graceMs: HOUR });
    assert.equal(again.deleted.count, 0);
  });

  it("deletes nothing when a manifest or an index chunk cannot be read", async () => {
    const before = await objectKeys(store);
    await store.put(manifestKey("broken", 1), new TextEncoder().encode("not a manifest"));
    await assert.rejects(collectGarbage(store, { graceMs: HOUR }), (e: Error) => {
      assert.ok(e instanceof TesseraError);
      assert.equal(e.code, "CORRUPT_MANIFEST");
      assert.match(e.message, /dbs\/broken\/manifests\/0000000000000001/);
      return true;
    });
    await store.delete(manifestKey("broken", 1));
    const saved = await readFile(join(root, indexKeys[0]!));
    await store.delete(indexKeys[0]!);
    await assert.rejects(collectGarbage(store, { graceMs: HOUR }), (e: Error) => {
      assert.ok(e instanceof TesseraError);
      assert.equal(e.code, "NOT_FOUND");
      assert.match(e.message, /index chunk [0-9a-f]{64}/);
      return true;
    });
    assert.deepEqual(await objectKeys(store), before.filter((key) => key !== indexKeys[0]));
    await store.put(indexKeys[0]!, new Uint8Array(saved));
  });
});
