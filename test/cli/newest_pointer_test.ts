import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { cp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../src/cli/main.ts";
import type { CliIo } from "../../src/cli/_io.ts";
import type { TesseraError } from "../../src/errors.ts";
import type { SkippedStore } from "../../src/manifest/catalog.ts";
import { openReplica } from "../../src/replica/open.ts";
import { restoreIfMissing } from "../../src/replicate/restore_missing.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const NAME = "app";

async function tessera(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: CliIo = {
    env: { TESSERA_HOSTNAME: "h", TESSERA_CONFIG: "" },
    stdout: (d) => (out += typeof d === "string" ? d : new TextDecoder().decode(d)),
    stderr: (t) => (err += t),
    isTty: false,
  };
  const code = await run(args, io);
  return { code, out, err };
}

async function addRow(db: string, k: number): Promise<void> {
  const client = createClient({ url: `file:${db}` });
  await client.executeMultiple(
    `CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (${k});`,
  );
  client.close();
}

// Two stores of one database: "lagging" missed the last sync, so the second store named holds the newer
// pointer. Every reader must take it; the order the stores are given in must not matter.
describe("several stores: every reader takes the newest pointer, and skips a failing store", () => {
  let dir: string;
  let db: string;
  let lagging: string;
  let current: string;
  let damaged: string;

  before(async () => {
    dir = await makeTempDir("newest-pointer");
    db = join(dir, "app.db");
    lagging = join(dir, "lagging");
    current = join(dir, "current");
    damaged = join(dir, "damaged");
    await addRow(db, 1);
    const sync = async (stores: string[], spool: string) =>
      await syncDatabase(db, {
        stores: stores.map((s) => new LocalStore(s)),
        hostname: "h",
        name: NAME,
        spoolDir: join(dir, spool),
        chunkSize: 4096,
      });
    assert.equal((await sync([lagging, current], "spool-1")).sequence, 1);
    await cp(lagging, damaged, { recursive: true });
    await writeFile(join(damaged, "dbs", NAME, "pointer"), new Uint8Array(10));
    await addRow(db, 2);
    assert.equal((await sync([current], "spool-2")).sequence, 2);
  });
  after(() => removeDir(dir));

  it("tessera restore and tessera query take the second store's newer snapshot", async () => {
    const restored = await tessera(
      "restore",
      "--name",
      NAME,
      "--store",
      lagging,
      "--store",
      current,
      "--out",
      join(dir, "restored.db"),
      "--json",
    );
    assert.equal(restored.code, 0, restored.err);
    assert.equal(JSON.parse(restored.out).sequence, 2);
    assert.equal(restored.err, "");
    const queried = await tessera(
      "query",
      NAME,
      "SELECT count(*) AS n FROM t",
      "--store",
      lagging,
      "--store",
      current,
      "--json",
    );
    assert.equal(queried.code, 0, queried.err);
    assert.equal(queried.out, '{"columns":["n"],"rows":[{"n":2}],"sequence":2}\n');
    assert.equal(queried.err, "");
  });

  it("openReplica() and restoreIfMissing() take the second store's newer snapshot", async () => {
    const stores = [new LocalStore(lagging), new LocalStore(current)];
    const replica = await openReplica(NAME, { store: stores, pollIntervalMs: 0 });
    try {
      assert.equal(replica.sequence, 2);
      assert.equal(Number((await replica.execute("SELECT count(*) FROM t")).rows[0]![0]), 2);
    } finally {
      replica.close();
    }
    const result = await restoreIfMissing(join(dir, "missing.db"), { stores, name: NAME });
    assert.equal(result.restored && result.sequence, 2);
    assert.equal(result.restored && result.store, stores[1]!.description);
    assert.deepEqual(result.warnings, []);
  });

  it("each of them skips a store with a damaged pointer, says so, and reads the other", async () => {
    const restored = await tessera(
      "restore",
      "--name",
      NAME,
      "--store",
      damaged,
      "--store",
      current,
      "--out",
      join(dir, "restored-past-damage.db"),
      "--json",
    );
    assert.equal(restored.code, 0, restored.err);
    assert.equal(JSON.parse(restored.out).sequence, 2);
    assert.match(
      restored.err,
      /^tessera: warning: skipped a store: Cannot decode pointer "dbs\/app\/pointer in file:/,
    );
    for (const args of [[NAME], [NAME, "--sequence", "1"]]) {
      const queried = await tessera(
        "query",
        ...args,
        "SELECT count(*) AS n FROM t",
        "--store",
        damaged,
        "--store",
        current,
        "--json",
      );
      assert.equal(queried.code, 0, queried.err);
      assert.match(queried.out, /"rows":\[\{"n":[12]\}\]/);
      if (args.length === 1) assert.match(queried.err, /^tessera: warning: skipped a store: .*pointer/);
    }

    const stores = [new LocalStore(damaged), new LocalStore(current)];
    const skipped: SkippedStore[] = [];
    const replica = await openReplica(NAME, {
      store: stores,
      pollIntervalMs: 0,
      onSkippedStore: (skip) => skipped.push(skip),
    });
    try {
      assert.equal(replica.sequence, 2);
    } finally {
      replica.close();
    }
    assert.deepEqual(skipped.map((s) => s.store), [stores[0]]);
    assert.equal((skipped[0]?.error as TesseraError).code, "CORRUPT_POINTER");
    await assert.rejects(
      openReplica(NAME, { store: [stores[0]!], pollIntervalMs: 0 }),
      (e: unknown) => (e as TesseraError).code === "CORRUPT_POINTER",
    );

    const result = await restoreIfMissing(join(dir, "missing-past-damage.db"), { stores, name: NAME });
    assert.equal(result.restored && result.sequence, 2);
    assert.equal(result.warnings.length, 1);
    assert.match(result.warnings[0]!, /^skipped file:.*damaged: Cannot decode pointer/);
  });
});
