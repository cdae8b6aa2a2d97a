import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { collectGarbage, type GarbageReport } from "../../src/history/gc.ts";
import { CHUNKS_PREFIX } from "../../src/manifest/keys.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { syncDatabase, type SyncReport } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { HeadResult, PutOptions, StoreCallOptions } from "../../src/store/types.ts";
import { runScript } from "../_helpers/run.ts";
import { checkWriterDb } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { assertBytes } from "../_helpers/assert.ts";
import { ageFiles, forgetDatabase, keysUnder, referencedKeys } from "./_fixtures.ts";
import { makeDb } from "../_helpers/writer.ts";

const GRACE_MS = 30 * 60_000;
const DAY = 24 * 3_600_000;
const HOST = "race-host";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface Hooks {
  beforeHead?: (key: string) => Promise<void>;
  afterHead?: (key: string, head: HeadResult) => Promise<void>;
  afterPut?: (key: string) => Promise<void>;
}

/**
 * Fault injection around a real directory store: calls `hooks` before a HEAD, after a HEAD and after a
 * PUT of each key, so a test can hold one party at an exact point while the other runs.
 */
class HookedStore extends LocalStore {
  readonly puts: string[] = [];
  readonly #hooks: Hooks;
  constructor(root: string, hooks: Hooks) {
    super(root);
    this.#hooks = hooks;
  }
  override async head(key: string, options?: StoreCallOptions): Promise<HeadResult> {
    await this.#hooks.beforeHead?.(key);
    const head = await super.head(key, options);
    await this.#hooks.afterHead?.(key, head);
    return head;
  }
  override async put(key: string, body: Uint8Array, options?: PutOptions) {
    const result = await super.put(key, body, options);
    this.puts.push(key);
    await this.#hooks.afterPut?.(key);
    return result;
  }
}

describe("gc racing a sync", () => {
  let dir: string;
  let db: string;
  let name: string;
  let n = 0;

  /**
   * A store holding every chunk of the database's current content, all written three days ago and
   * referenced by no manifest: the next sync of the same content will rely on them while gc wants them.
   */
  async function orphanedStore(): Promise<string> {
    const root = join(dir, `store-${++n}`);
    const store = new LocalStore(root);
    const report = await syncDatabase(db, {
      stores: [store],
      hostname: HOST,
      spoolDir: join(dir, `setup-spool-${n}`),
      chunkSize: 4096,
    });
    name = report.name;
    await forgetDatabase(store, name);
    assert.ok(await ageFiles(join(root, "chunks"), 3 * DAY) > 50);
    return root;
  }

  function syncOptions(store: LocalStore) {
    return { stores: [store], hostname: HOST, spoolDir: join(dir, `spool-${++n}`), chunkSize: 4096 };
  }

  /** The pointer's manifest has every chunk, and restores to the source's bytes and passes integrity_check. */
  async function assertIntact(root: string): Promise<void> {
    const store = new LocalStore(root);
    const { manifest } = await loadLatest(store, name);
    const present = new Set(await keysUnder(store, CHUNKS_PREFIX));
    const missing = [...await referencedKeys(store, manifest)].filter((key) => !present.has(key));
    assert.deepEqual(missing, [], "chunks the pointer's manifest references are missing");
    const out = join(dir, `restored-${++n}.db`);
    await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
    assert.equal((await checkWriterDb(out)).integrity, "ok");
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "restored database");
  }

  before(async () => {
    dir = await makeTempDir("gc-race");
    db = join(dir, "app.db");
    await makeDb(db, 400, { payload: 1500 });
  });
  after(() => removeDir(dir));

  it("a gc that saw a chunk old and deletes it just after the sync rewrote it: the sync writes it back", async () => {
    const root = await orphanedStore();
    const victim = (await keysUnder(new LocalStore(root), CHUNKS_PREFIX))[0]!;
    const gcLooked = deferred();
    const syncWrote = deferred();
    let gcHeld = false;
    let syncHeld = false;
    // gc: HEAD (old) ... held until the sync has rewritten the chunk ... DELETE, within its window.
    const gcStore = new HookedStore(root, {
      afterHead: async (key) => {
        if (key !== victim || gcHeld) return;
        gcHeld = true;
        gcLooked.resolve();
        await syncWrote.promise;
      },
    });
    // sync: its HEAD waits for gc's, so it too sees the old copy, and writes it again.
    const syncStore = new HookedStore(root, {
      beforeHead: async (key) => {
        if (key !== victim || syncHeld) return;
        syncHeld = true;
        await gcLooked.promise;
      },
      afterPut: async (key) => {
        if (key === victim) syncWrote.resolve();
      },
    });
    const [gc, sync] = await Promise.all([
      collectGarbage(gcStore, { graceMs: GRACE_MS }),
      syncDatabase(db, syncOptions(syncStore)),
    ]);
    assert.ok(gc.deleted.chunks.some((c) => c.key === victim), "gc deleted the rewritten chunk");
    assert.equal(syncStore.puts.filter((key) => key === victim).length, 2, "the sync wrote it back once");
    assert.equal(sync.sequence, 1);
    await assertIntact(root);
  });

  it("a sync held after its HEAD while gc deletes the chunk: the sync's PUT brings it back", async () => {
    const root = await orphanedStore();
    const victim = (await keysUnder(new LocalStore(root), CHUNKS_PREFIX))[0]!;
    const gcDone = deferred();
    let held = false;
    const syncStore = new HookedStore(root, {
      afterHead: async (key, head) => {
        if (key !== victim || held) return;
        held = true;
        assert.equal(head.status, "ok", "the sync saw the old copy");
        await gcDone.promise;
      },
    });
    const syncing = syncDatabase(db, syncOptions(syncStore));
    for (let waited = 0; !held; waited += 5) {
      assert.ok(waited < 60_000, "the sync never looked at the chunk");
      await sleep(5);
    }
    const gc = await collectGarbage(new LocalStore(root), { graceMs: GRACE_MS });
    gcDone.resolve();
    await syncing;
    assert.ok(gc.deleted.chunks.some((c) => c.key === victim), "gc deleted the chunk the sync had seen");
    await assertIntact(root);
  });

  it("gc and sync started with random delays, many times, never leave the pointer's snapshot broken", async () => {
    const outcomes: { gc: GarbageReport; sync: SyncReport }[] = [];
    for (let i = 0; i < 10; i++) {
      const root = await orphanedStore();
      // Most runs start both within a few milliseconds, where the dangerous orders happen; some give gc a
      // head start, so that it also deletes chunks while the sync renews others.
      const [gcDelay, syncDelay] = i % 3 === 0
        ? [0, 5 + Math.random() * 100]
        : [Math.random() * 40, Math.random() * 40];
      const [gc, sync] = await Promise.all([
        sleep(gcDelay).then(() => collectGarbage(new LocalStore(root), { graceMs: GRACE_MS })),
        sleep(syncDelay).then(() => syncDatabase(db, syncOptions(new LocalStore(root)))),
      ]);
      await assertIntact(root);
      outcomes.push({ gc, sync });
    }
    // The race was run, not dodged: gc found old unreferenced chunks to delete while the sync ran.
    assert.ok(
      outcomes.some((o) => o.gc.deleted.count > 0),
      JSON.stringify(outcomes.map((o) => o.gc.deleted.count)),
    );
  });

  it("gc and sync as separate processes, started with random delays, never leave the snapshot broken", async () => {
    for (let i = 0; i < 3; i++) {
      const root = await orphanedStore();
      const env = { TESSERA_HOSTNAME: HOST, TESSERA_CONFIG: "" };
      const [gc, sync] = await Promise.all([
        sleep(Math.random() * 400).then(() =>
          runScript("src/cli/main.ts", ["gc", "--store", root, "--grace", "30m", "--json"], { env })
        ),
        sleep(Math.random() * 400).then(() =>
          runScript("src/cli/main.ts", [
            "sync",
            db,
            "--store",
            root,
            "--spool",
            join(dir, `cli-spool-${++n}`),
            "--chunk-size",
            "4096",
          ], { env })
        ),
      ]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.equal(sync.code, 0, sync.stderr);
      assert.equal(sync.stdout.trim(), name);
      await assertIntact(root);
    }
  });
});
