import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { collectGarbage, type GarbageReport } from "../../src/history/gc.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { syncDatabase, type SyncReport } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { HeadResult, PutOptions, StoreCallOptions } from "../../src/store/types.ts";
import { runScript } from "../_helpers/run.ts";
import { checkWriterDb } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { assertBytes } from "../_helpers/assert.ts";
import { ageFiles, forgetDatabase, objectKeys, referencedKeys } from "./_fixtures.ts";
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
   * A store holding every chunk of the database's current content, in packs and index chunks all written
   * three days ago and referenced by no manifest: the next sync of the same content could be tempted to rely
   * on them while gc wants them.
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
    assert.ok(await ageFiles(join(root, "packs"), 3 * DAY) > 0);
    assert.ok(await ageFiles(join(root, "chunks"), 3 * DAY) > 0, "the setup has index chunks");
    return root;
  }

  function syncOptions(store: LocalStore) {
    return { stores: [store], hostname: HOST, spoolDir: join(dir, `spool-${++n}`), chunkSize: 4096 };
  }

  /** The pointer's manifest has every object, and restores to the source's bytes and passes integrity_check. */
  async function assertIntact(root: string): Promise<void> {
    const store = new LocalStore(root);
    const { manifest } = await loadLatest(store, name);
    const present = new Set(await objectKeys(store));
    const missing = [...await referencedKeys(store, manifest)].filter((key) => !present.has(key));
    assert.deepEqual(missing, [], "objects the pointer's manifest references are missing");
    const out = join(dir, `restored-${++n}.db`);
    await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
    assert.equal((await checkWriterDb(out)).integrity, "ok");
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "restored database");
  }

  before(async () => {
    dir = await makeTempDir("gc-race");
    db = join(dir, "app.db");
    // Over 512 chunks of 4 KiB: the manifest lists them through index chunks.
    await makeDb(db, 400, { payload: 6000 });
  });
  after(() => removeDir(dir));

  it("a gc held between its look at an old pack and the delete, while a sync publishes the same content", async () => {
    const root = await orphanedStore();
    const old = await objectKeys(new LocalStore(root));
    const victim = old.find((key) => key.startsWith("packs/"))!;
    const gcLooked = deferred();
    const syncDone = deferred();
    let held = false;
    const touched: string[] = [];
    // gc: HEAD (old) ... held until the sync has published ... DELETE, within its window.
    const gcStore = new HookedStore(root, {
      afterHead: async (key) => {
        if (key !== victim || held) return;
        held = true;
        gcLooked.resolve();
        await syncDone.promise;
      },
    });
    const syncStore = new HookedStore(root, {
      beforeHead: async (key) => {
        touched.push(key);
      },
    });
    const gcing = collectGarbage(gcStore, { graceMs: GRACE_MS });
    await gcLooked.promise;
    const sync = await syncDatabase(db, syncOptions(syncStore));
    syncDone.resolve();
    const gc = await gcing;
    assert.equal(sync.sequence, 1);
    assert.ok(gc.deleted.chunks.some((c) => c.key === victim), "gc deleted the old pack it had looked at");
    // The sync relied on no old pack: it wrote its own, and asked the store about none of them.
    assert.deepEqual(touched.filter((key) => key.startsWith("packs/")), []);
    assert.ok(syncStore.puts.some((key) => key.startsWith("packs/") && !old.includes(key)));
    await assertIntact(root);
  });

  it("a sync held after writing its first pack while gc runs whole: gc keeps the young pack", async () => {
    const root = await orphanedStore();
    const old = await objectKeys(new LocalStore(root));
    const gcDone = deferred();
    let held: string | undefined;
    const syncStore = new HookedStore(root, {
      afterPut: async (key) => {
        if (!key.startsWith("packs/") || held) return;
        held = key;
        await gcDone.promise;
      },
    });
    const syncing = syncDatabase(db, syncOptions(syncStore));
    for (let waited = 0; !held; waited += 5) {
      assert.ok(waited < 60_000, "the sync never wrote a pack");
      await sleep(5);
    }
    const gc = await collectGarbage(new LocalStore(root), { graceMs: GRACE_MS });
    gcDone.resolve();
    await syncing;
    const deleted = gc.deleted.chunks.map((c) => c.key);
    assert.ok(!deleted.includes(held!), "gc left the pack the sync had just written");
    assert.deepEqual(
      deleted.filter((key) => key.startsWith("packs/")),
      old.filter((key) => key.startsWith("packs/")),
    );
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
