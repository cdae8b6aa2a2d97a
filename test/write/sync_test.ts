import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { manifestKey, pointerKey } from "../../src/manifest/keys.ts";
import { syncDatabase, type SyncOptions } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import type { BlobStore, PutOptions } from "../../src/store/types.ts";
import { checkWriterDb, isCommittedState } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { makeDb, startWriter } from "../_helpers/writer.ts";
import { listAll } from "../_helpers/store.ts";
import { assertBytes } from "../_helpers/assert.ts";

async function restoreLatest(store: BlobStore, name: string, out: string) {
  const { manifest } = await loadLatest(store, name);
  const result = await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  return { manifest, result };
}

async function addRow(path: string): Promise<void> {
  const db = createClient({ url: `file:${path}` });
  await db.batch([
    { sql: "INSERT INTO items (k, payload) VALUES ((SELECT last FROM meta) + 1, zeroblob(100))", args: [] },
    { sql: "UPDATE meta SET last = last + 1", args: [] },
  ], "write");
  db.close();
}

class RecordingStore extends LocalStore {
  readonly puts: string[] = [];
  override async put(key: string, body: Uint8Array, options?: PutOptions) {
    this.puts.push(key);
    return await super.put(key, body, options);
  }
}

describe("syncDatabase()", () => {
  let dir: string;
  let n = 0;
  const fresh = async (label: string) => {
    const base = join(dir, `${++n}-${label}`);
    return {
      db: `${base}.db`,
      store: new LocalStore(`${base}-store`),
      spoolDir: `${base}-spool`,
      out: `${base}-restored.db`,
    };
  };
  const opts = (store: BlobStore, spoolDir: string): SyncOptions => ({
    stores: [store],
    hostname: "test-host",
    spoolDir,
  });

  before(async () => {
    dir = await makeTempDir("sync");
  });
  after(() => removeDir(dir));

  it("publishes a snapshot that restores byte for byte; a second sync is a no-op that uploads nothing", async () => {
    const t = await fresh("roundtrip");
    await makeDb(t.db, 300, { payload: 2000 });
    const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(first.noop, false);
    assert.equal(first.sequence, 1);
    assert.match(first.name, /^[0-9a-f]{4}-test-host%3A%2F/);
    assert.equal(first.chunks.uploaded + first.chunks.zero + first.chunks.skipped, first.chunks.total - 1);
    const { result } = await restoreLatest(t.store, first.name, t.out);
    const source = new Uint8Array(await readFile(t.db));
    assertBytes(new Uint8Array(await readFile(t.out)), source, "restored image");
    assert.equal(result.sha256, first.imageSha256);

    const listed = await listAll(t.store, "");
    const second = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(second.noop, true);
    assert.equal(second.sequence, 1);
    assert.equal(second.chunks.uploaded, 0);
    assert.equal(second.chunks.skipped, second.chunks.total - 1 - second.chunks.zero);
    assert.equal(second.bytes.data + second.bytes.manifest, 0);
    assert.deepEqual(await listAll(t.store, ""), listed, "a no-op sync writes nothing");
  });

  for (const mode of ["wal", "delete"] as const) {
    it(`uploads only the changed chunk and a small manifest after a one-row update (${mode} mode)`, async () => {
      const t = await fresh(`one-row-${mode}`);
      await makeDb(t.db, 2000, { mode, payload: 2000 });
      const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
      assert.ok(first.chunks.total > 40, `a database of ${first.imageLength} bytes`);
      // The application keeps its connection, as applications do: the last connection to close would
      // checkpoint the WAL into the file, and then only a full read can tell what changed.
      const db = createClient({ url: `file:${t.db}` });
      await db.execute({
        sql: "UPDATE items SET payload = ? WHERE k = 1234",
        args: [new Uint8Array(2000).fill(7)],
      });
      const second = await syncDatabase(t.db, opts(t.store, t.spoolDir)).finally(() => db.close());
      assert.equal(second.noop, false);
      assert.equal(second.sequence, 2);
      assert.ok(
        second.chunks.uploaded >= 1 && second.chunks.uploaded <= 2,
        `uploaded ${second.chunks.uploaded} chunks`,
      );
      assert.ok(second.bytes.data <= 2 * 65536 + 64, `uploaded ${second.bytes.data} data bytes`);
      assert.ok(second.bytes.manifest < 64 * 1024 + 8192, `uploaded ${second.bytes.manifest} manifest bytes`);
      if (mode === "wal") {
        // The WAL proves which pages changed: the sync reads those chunks and chunk 0, not the file.
        assert.ok(second.chunks.read <= 4, `read ${second.chunks.read} of ${second.chunks.total} chunks`);
        assert.equal(second.imageSha256, null);
      } else {
        // Only a whole read tells what changed; each chunk is hashed once, the whole image not again (the
        // manifest's image digest names it).
        assert.equal(second.chunks.read, second.chunks.total);
        assert.equal(second.imageSha256, null);
      }
      await restoreLatest(t.store, second.name, t.out);
      const state = await checkWriterDb(t.out);
      assert.ok(isCommittedState(state), JSON.stringify(state));
      const check = createClient({ url: `file:${t.out}` });
      const row = await check.execute("SELECT payload FROM items WHERE k = 1234");
      check.close();
      assert.deepEqual(new Uint8Array(row.rows[0]?.[0] as ArrayBuffer), new Uint8Array(2000).fill(7));
    });
  }

  it("loses only time without its spool: a full re-read uploads no chunk again", async () => {
    const t = await fresh("spool-lost");
    await makeDb(t.db, 500, { mode: "wal", payload: 2000 });
    const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    await rm(t.spoolDir, { recursive: true, force: true });
    const again = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(again.noop, false);
    assert.equal(again.chunks.read, again.chunks.total);
    assert.equal(again.chunks.uploaded, 0);
    assert.equal(again.bytes.data, 0);
    assert.equal(again.sequence, first.sequence + 1);
  });

  it("publishes chunks, then the manifest, then the pointer", async () => {
    const t = await fresh("order");
    const store = new RecordingStore(`${t.db}-recorded`);
    await makeDb(t.db, 200, { payload: 2000 });
    const report = await syncDatabase(t.db, opts(store, t.spoolDir));
    const kinds = store.puts.map((k) =>
      k.startsWith("chunks/") || k.startsWith("packs/")
        ? "chunk"
        : k.endsWith("/pointer")
        ? "pointer"
        : "manifest"
    );
    const firstManifest = kinds.indexOf("manifest");
    assert.ok(firstManifest > 0, "chunks come before the manifest");
    assert.ok(kinds.slice(0, firstManifest).every((k) => k === "chunk"));
    // The data chunks travel in packs: one pack object here, not one object per chunk.
    assert.equal(store.puts.filter((k) => k.startsWith("packs/")).length, 1);
    assert.ok(report.chunks.uploaded > 1);
    assert.deepEqual(kinds.slice(firstManifest), ["manifest", "pointer"]);
    assert.equal(store.puts.at(-2), report.manifestKey);
  });

  it("skips a manifest that a publish left without its pointer, keeping it as history", async () => {
    const t = await fresh("orphan");
    await makeDb(t.db, 100, { mode: "wal", payload: 2000 });
    const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    // A publish that died after its manifest and before its pointer.
    await t.store.put(manifestKey(first.name, 2), new TextEncoder().encode("an orphaned manifest"));
    await addRow(t.db);
    const second = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(second.sequence, 3);
    const { manifest } = await loadLatest(t.store, first.name);
    assert.equal(manifest.sequence, 3);
    assert.equal((await t.store.head(manifestKey(first.name, 2))).status, "ok");
  });

  it("refuses to replace a manifest another writer published first, leaving the pointer alone", async () => {
    const t = await fresh("conflict");
    await makeDb(t.db, 100, { mode: "wal", payload: 2000 });
    const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    const pointerBefore = await t.store.get(pointerKey(first.name));
    // The other writer's manifest lands between this sync's look for a free sequence and its put.
    const racing = new (class extends LocalStore {
      override head(key: string) {
        return key === manifestKey(first.name, 2)
          ? Promise.resolve({ status: "not_found" as const })
          : super.head(key);
      }
    })(t.store.root);
    await racing.put(manifestKey(first.name, 2), new TextEncoder().encode("someone else's manifest"));
    await addRow(t.db);
    await assert.rejects(syncDatabase(t.db, opts(racing, t.spoolDir)), {
      code: "CONFLICT",
      message: /another writer published that sequence first/,
    });
    const pointerAfter = await t.store.get(pointerKey(first.name));
    assert.ok(pointerBefore.status === "ok" && pointerAfter.status === "ok");
    assert.deepEqual(pointerAfter.body, pointerBefore.body);
  });

  it("still publishes when the spool cannot be written, and says so", async () => {
    const t = await fresh("bad-spool");
    await makeDb(t.db, 50, { payload: 2000 });
    const blocker = `${t.spoolDir}-file`;
    await writeFile(blocker, "not a directory");
    const report = await syncDatabase(t.db, opts(t.store, join(blocker, "spool")));
    assert.equal(report.sequence, 1);
    assert.equal(report.warnings.length, 1);
    assert.match(report.warnings[0] ?? "", /Cannot save the sync record in ".*-file\/spool"/);
    assert.equal((await loadLatest(t.store, report.name)).manifest.sequence, 1);
  });

  it("ignores a damaged sync record and reads everything again", async () => {
    const t = await fresh("damaged-record");
    await makeDb(t.db, 300, { mode: "wal", payload: 2000 });
    const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    const recordPath = join(t.spoolDir, "sync", first.name, "capture.json");
    const record = JSON.parse(await readFile(recordPath, "utf8"));
    record.ids[0] = "not-a-chunk-id";
    await writeFile(recordPath, JSON.stringify(record));
    await addRow(t.db);
    const second = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(second.chunks.read, second.chunks.total);
    await restoreLatest(t.store, second.name, t.out);
    assert.ok(isCommittedState(await checkWriterDb(t.out)));
  });

  it("queues overlapping syncs of one database: the second waits, then finds nothing new", async () => {
    const t = await fresh("overlap");
    await makeDb(t.db, 2000, { mode: "wal", payload: 2000 });
    const reports = await Promise.all([
      syncDatabase(t.db, opts(t.store, t.spoolDir)),
      syncDatabase(t.db, opts(t.store, t.spoolDir)),
    ]);
    assert.deepEqual(reports.map((r) => r.sequence), [1, 1]);
    assert.deepEqual(reports.map((r) => r.noop).sort(), [false, true]);
    const published = reports.find((r) => !r.noop)!;
    const { result } = await restoreLatest(t.store, published.name, t.out);
    assert.equal(result.sha256, published.imageSha256);
    // The waiting sync kept the record the first one left: it names the published manifest.
    const record = JSON.parse(
      await readFile(join(t.spoolDir, "sync", published.name, "capture.json"), "utf8"),
    );
    assert.equal(record.sequence, 1);
    assert.match(record.manifestSha256, /^[0-9a-f]{64}$/);
    await addRow(t.db);
    const next = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(next.sequence, 2);
  });

  it("without its record, checks every object with the store: a pack the store lost is written again", async () => {
    const t = await fresh("lost-chunk");
    await makeDb(t.db, 500, { mode: "wal", payload: 2000 });
    const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    const packKeys = (await listAll(t.store, "packs/")).map((item) => (item as { key: string }).key).sort();
    assert.equal(packKeys.length, 1);
    await t.store.delete(packKeys[0]!);
    await rm(t.spoolDir, { recursive: true, force: true });
    await addRow(t.db);
    const second = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(second.sequence, first.sequence + 1);
    const { result } = await restoreLatest(t.store, second.name, t.out);
    assert.equal(result.sha256, second.imageSha256);
  });

  it("without its record, publishes over a pointer whose manifest is gone", async () => {
    const t = await fresh("manifest-gone");
    await makeDb(t.db, 200, { mode: "wal", payload: 2000 });
    const first = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    await t.store.delete(manifestKey(first.name, first.sequence));
    await rm(t.spoolDir, { recursive: true, force: true });
    const second = await syncDatabase(t.db, opts(t.store, t.spoolDir));
    assert.equal(second.sequence, first.sequence + 1);
    const { result } = await restoreLatest(t.store, second.name, t.out);
    assert.equal(result.sha256, second.imageSha256);
  });

  it("syncs to two targets that are one storage, and to two stores with the same description", async () => {
    const t = await fresh("aliases");
    await makeDb(t.db, 200, { mode: "wal", payload: 2000 });
    const alias = new LocalStore(t.store.root);
    const one = await syncDatabase(t.db, { ...opts(t.store, t.spoolDir), stores: [t.store, alias] });
    await addRow(t.db);
    const two = await syncDatabase(t.db, { ...opts(t.store, t.spoolDir), stores: [t.store, alias] });
    assert.deepEqual([one.sequence, two.sequence], [1, 2]);
    const restored = await restoreLatest(alias, two.name, t.out);
    assert.equal(restored.manifest.sequence, 2);
    assert.ok(isCommittedState(await checkWriterDb(t.out)));
    const a = new MemoryStore();
    const b = new MemoryStore();
    assert.equal(a.description, b.description);
    const both = await syncDatabase(t.db, { ...opts(a, `${t.spoolDir}-memory`), stores: [a, b] });
    for (const store of [a, b]) {
      assert.equal((await restoreLatest(store, both.name, t.out)).result.sha256, both.imageSha256);
    }
  });

  it("writes every snapshot to every store", async () => {
    const t = await fresh("two-stores");
    const second = new MemoryStore();
    await makeDb(t.db, 100, { mode: "wal", payload: 2000 });
    const report = await syncDatabase(t.db, { ...opts(t.store, t.spoolDir), stores: [t.store, second] });
    const { result } = await restoreLatest(second, report.name, t.out);
    assert.equal(result.sha256, report.imageSha256);
  });

  it("rejects a missing database and a read-only store with clear errors", async () => {
    const t = await fresh("errors");
    await assert.rejects(syncDatabase(join(dir, "nope.db"), opts(t.store, t.spoolDir)), {
      code: "NOT_FOUND",
      message: /Cannot sync ".*nope\.db": no such database file/,
    });
    const readOnly = {
      ...t.store,
      description: "ro",
      capabilities: { write: false, list: false, conditionalPut: false },
    };
    await assert.rejects(syncDatabase(t.db, opts(readOnly as unknown as BlobStore, t.spoolDir)), {
      code: "READONLY",
    });
  });

  for (const mode of ["wal", "delete"] as const) {
    it(`takes only committed states of a database a writer process keeps changing (${mode} mode)`, async () => {
      const t = await fresh(`live-${mode}`);
      const writer = await startWriter(t.db, { mode, payload: 3000 });
      let last = 0;
      try {
        for (let round = 0; round < 6; round++) {
          await writer.waitFor(writer.committed + 20);
          const committedBefore = writer.committed;
          const report = await syncDatabase(t.db, opts(t.store, t.spoolDir));
          await restoreLatest(t.store, report.name, t.out);
          const state = await checkWriterDb(t.out);
          assert.ok(isCommittedState(state), `round ${round}: ${JSON.stringify(state)}`);
          assert.ok(
            state.last >= committedBefore,
            `round ${round}: saw ${state.last}, ${committedBefore} were committed`,
          );
          assert.ok(state.last >= last, `round ${round}: went back from ${last} to ${state.last}`);
          last = state.last;
        }
      } finally {
        const final = await writer.stop();
        const report = await syncDatabase(t.db, opts(t.store, t.spoolDir));
        await restoreLatest(t.store, report.name, t.out);
        assert.equal((await checkWriterDb(t.out)).last, final);
      }
    });
  }
});
