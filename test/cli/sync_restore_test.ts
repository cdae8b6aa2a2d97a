import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { cp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../src/cli/main.ts";
import type { CliIo } from "../../src/cli/_io.ts";
import { idToHex } from "../../src/chunk/ids.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { LocalStore } from "../../src/store/local.ts";
import { damageStoredChunk, storedChunks } from "../_helpers/stored.ts";
import { startFaultProxy } from "../_helpers/fault_proxy.ts";
import { runScript } from "../_helpers/run.ts";
import { startS3Server } from "../_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { makeDb } from "../_helpers/writer.ts";
import { assertBytes } from "../_helpers/assert.ts";

function cli(env: Record<string, string | undefined>) {
  return async (...args: string[]) => {
    let out = "";
    let err = "";
    const io: CliIo = {
      env,
      stdout: (d) => (out += typeof d === "string" ? d : new TextDecoder().decode(d)),
      stderr: (t) => (err += t),
      isTty: false,
    };
    const code = await run(args, io);
    return { code, out, err };
  };
}

describe("tessera sync, restore, manifest and ls", () => {
  let dir: string;
  let db: string;
  let store: string;
  let env: Record<string, string>;
  let tessera: ReturnType<typeof cli>;
  let name: string;

  before(async () => {
    dir = await makeTempDir("cli-sync");
    db = join(dir, "app.db");
    store = join(dir, "backups");
    env = { TESSERA_HOSTNAME: "cli-host", TESSERA_CONFIG: "" };
    tessera = cli(env);
    await makeDb(db, 400, { payload: 1500 });
  });
  after(() => removeDir(dir));

  it("sync prints the database's name, and --json what it uploaded", async () => {
    const first = await tessera("sync", db, "--store", store, "--spool", join(dir, "spool"));
    assert.equal(first.code, 0, first.err);
    name = first.out.trim();
    assert.match(name, /^[0-9a-f]{4}-cli-host%3A%2F.*app\.db$/);
    assert.match(first.err, /sequence 1: \d+ of \d+ chunks uploaded/);
    await cp(join(store, "dbs", name, "pointer"), join(dir, "pointer-1")); // for the multi-store test
    const change = createClient({ url: `file:${db}` });
    // Row 300 lies past chunk 0, which the manifest holds inline: its chunk must be uploaded.
    await change.execute({ sql: "UPDATE items SET payload = zeroblob(1500) WHERE k = 300" });
    change.close();
    const second = await tessera("sync", db, "--store", store, "--spool", join(dir, "spool"), "--json");
    assert.equal(second.code, 0, second.err);
    const report = JSON.parse(second.out);
    assert.equal(report.name, name);
    assert.equal(report.sequence, 2);
    assert.equal(report.noop, false);
    assert.ok(report.chunks.uploaded >= 1 && report.chunks.uploaded <= 2, JSON.stringify(report.chunks));
    assert.equal(typeof report.bytes.data, "number");
    assert.equal(typeof report.bytes.manifest, "number");
    const noop = JSON.parse(
      (await tessera("sync", db, "--store", store, "--spool", join(dir, "spool"), "--json")).out,
    );
    assert.equal(noop.noop, true);
    assert.equal(noop.bytes.data + noop.bytes.manifest, 0);
  });

  it("restore by host and source path writes the database byte for byte", async () => {
    const out = join(dir, "restored.db");
    const result = await tessera(
      "restore",
      "--hostname",
      "cli-host",
      "--source-path",
      db,
      "--store",
      store,
      "--out",
      out,
      "--json",
    );
    assert.equal(result.code, 0, result.err);
    const report = JSON.parse(result.out);
    assert.equal(report.sequence, 2);
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "restored database");
    const again = await tessera("restore", "--name", name, "--store", store, "--out", out);
    assert.equal(again.code, 2);
    assert.match(again.err, /exists; pass --force to replace it/);
    assert.equal(
      (await tessera("restore", "--name", name, "--store", store, "--out", out, "--force")).code,
      0,
    );
  });

  it("restore with several stores takes the newest snapshot, and a failing store does not hide the others", async () => {
    // A lagging copy of the store: it holds only snapshot 1.
    const lagging = join(dir, "lagging");
    await cp(store, lagging, { recursive: true });
    await writeFile(join(lagging, "dbs", name, "pointer"), await readFile(join(dir, "pointer-1")));
    const out = join(dir, "newest.db");
    const result = await tessera(
      "restore",
      "--name",
      name,
      "--store",
      lagging,
      "--store",
      store,
      "--out",
      out,
      "--json",
    );
    assert.equal(result.code, 0, result.err);
    assert.equal(JSON.parse(result.out).sequence, 2, "the newest of the two stores' snapshots");
    // A store whose pointer is damaged: the restore warns, and takes the other store's snapshot.
    await writeFile(join(lagging, "dbs", name, "pointer"), new Uint8Array(10));
    const warned = await tessera(
      "restore",
      "--name",
      name,
      "--store",
      lagging,
      "--store",
      store,
      "--out",
      out,
      "--force",
      "--json",
    );
    assert.equal(warned.code, 0, warned.err);
    assert.equal(JSON.parse(warned.out).sequence, 2);
    assert.match(warned.err, /warning: skipped a store: .*pointer/);
  });

  it("restore will not leave a stale -wal beside the restored database", async () => {
    const out = join(dir, "with-wal.db");
    await writeFile(out, new TextEncoder().encode("an old database"));
    await writeFile(`${out}-wal`, new TextEncoder().encode("an old write-ahead log"));
    const refused = await tessera("restore", "--name", name, "--store", store, "--out", out);
    assert.equal(refused.code, 2);
    const orphan = join(dir, "orphan-wal.db");
    await writeFile(`${orphan}-wal`, new TextEncoder().encode("a log without its database"));
    const refusedOrphan = await tessera("restore", "--name", name, "--store", store, "--out", orphan);
    assert.equal(refusedOrphan.code, 2);
    assert.match(refusedOrphan.err, /orphan-wal\.db-wal" exists and SQLite would apply it/);
    const forced = await tessera("restore", "--name", name, "--store", store, "--out", out, "--force");
    assert.equal(forced.code, 0, forced.err);
    assert.ok(!(await readdir(dir)).some((f) => f.startsWith("with-wal.db-")), "the old -wal is gone");
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "forced restore");
  });

  it("restore --sequence and --manifest FILE restore older snapshots", async () => {
    const saved = join(dir, "seq1.manifest");
    const shown = await tessera(
      "manifest",
      "--name",
      name,
      "--store",
      store,
      "--sequence",
      "1",
      "--out",
      saved,
      "--json",
    );
    assert.equal(shown.code, 0, shown.err);
    const manifest = JSON.parse(shown.out);
    assert.equal(manifest.sequence, 1);
    assert.equal(manifest.name, name);
    assert.equal(manifest.hostname, "cli-host");
    assert.match(manifest.imageSha256, /^[0-9a-f]{64}$/);
    const out = join(dir, "seq1.db");
    const restored = await tessera("restore", "--manifest", saved, "--store", store, "--out", out, "--json");
    assert.equal(restored.code, 0, restored.err);
    assert.equal(JSON.parse(restored.out).sha256, manifest.imageSha256);
    const bySequence = await tessera(
      "restore",
      "--name",
      name,
      "--sequence",
      "1",
      "--store",
      store,
      "--out",
      join(dir, "s1.db"),
      "--json",
    );
    assert.equal(JSON.parse(bySequence.out).sha256, manifest.imageSha256);
  });

  it("ls lists the databases and one database's history", async () => {
    const all = await tessera("ls", "--store", store, "--json");
    assert.equal(all.code, 0, all.err);
    const rows = all.out.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => [r.name, r.sequence, r.hostname]), [[name, 2, "cli-host"]]);
    const history = await tessera("ls", "--history", "--name", name, "--store", store, "--json");
    assert.deepEqual(history.out.trim().split("\n").map((l) => JSON.parse(l).sequence), [1, 2]);
  });

  it("restore of an unknown database exits 3 and names what to check", async () => {
    const result = await tessera(
      "restore",
      "--name",
      "nothing-here",
      "--store",
      store,
      "--out",
      join(dir, "x.db"),
    );
    assert.equal(result.code, 3);
    assert.match(
      result.err,
      /No snapshot of database "nothing-here" in file:\/\/.*: run `tessera sync` first/,
    );
  });

  it("restore refuses a corrupted chunk, naming it, and leaves no file behind", async () => {
    const damaged = join(dir, "damaged-store");
    await tessera("sync", db, "--store", damaged, "--spool", join(dir, "spool2"), "--chunk-size", "4096");
    const damagedStore = new LocalStore(damaged);
    const { manifest } = await loadLatest(damagedStore, name);
    const chunk = (await storedChunks(damagedStore, manifest))[3]!;
    assert.ok(chunk.key.startsWith("packs/"), "the chunks travel in a pack");
    await damageStoredChunk(damagedStore, chunk);
    const victim = idToHex(chunk.id);
    const out = join(dir, "never.db");
    const result = await tessera("restore", "--name", name, "--store", damaged, "--out", out);
    assert.equal(result.code, 1);
    assert.match(result.err, new RegExp(`chunk ${victim}`));
    assert.ok(
      !(await readdir(dir)).some((f) => f.startsWith("never.db") || f.startsWith(".never.db")),
      "no file left",
    );
  });

  it("bad usage exits 2 with a hint", async () => {
    for (
      const args of [["sync"], ["restore", "--name", "x", "--store", store], ["sync", db], [
        "restore",
        "--out",
        "x",
        "--store",
        store,
      ]]
    ) {
      const result = await cli({ TESSERA_CONFIG: "" })(...args);
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.err}`);
      assert.match(result.err, /Run "tessera --help" for usage/);
    }
  });

  it("reads Verneuil's config shape: S3 targets, a local chunk cache, and a warm cache makes no chunk GETs", async () => {
    const s3 = await startS3Server();
    const proxy = await startFaultProxy(s3.endpoint);
    try {
      const configPath = join(dir, "verneuil.json");
      await writeFile(
        configPath,
        JSON.stringify({
          make_default: true,
          replication_spooling_dir: join(dir, "verneuil-spool"),
          replication_targets: [
            {
              s3: {
                region: s3.region,
                chunk_bucket: s3.bucket,
                manifest_bucket: s3.bucket,
                domain_addressing: false,
                endpoint: proxy.endpoint,
              },
            },
            { local: { directory: join(dir, "verneuil-cache"), num_shards: 8, capacity: 10000 } },
          ],
        }),
      );
      const s3env = { ...env, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
      const withS3 = cli(s3env);
      const synced = await withS3("-c", `@${configPath}`, "sync", db);
      assert.equal(synced.code, 0, synced.err);
      assert.equal(synced.out.trim(), name);

      await proxy.resetLog();
      const cold = await withS3(
        "-c",
        `@${configPath}`,
        "restore",
        "--source-path",
        db,
        "--out",
        join(dir, "cold.db"),
      );
      assert.equal(cold.code, 0, cold.err);
      const dataGet = (r: { method: string; path: string }) =>
        r.method === "GET" && /\/(chunks|packs)\//.test(r.path);
      const coldGets = (await proxy.log()).filter(dataGet);
      assert.ok(coldGets.length > 0, "a cold restore fetches chunks");

      await proxy.resetLog();
      const warm = await withS3(
        "-c",
        `@${configPath}`,
        "restore",
        "--source-path",
        db,
        "--out",
        join(dir, "warm.db"),
      );
      assert.equal(warm.code, 0, warm.err);
      const warmGets = (await proxy.log()).filter(dataGet);
      assert.equal(warmGets.length, 0, `a warm restore fetched ${warmGets.length} chunks`);
      assertBytes(
        new Uint8Array(await readFile(join(dir, "warm.db"))),
        new Uint8Array(await readFile(db)),
        "warm restore",
      );
    } finally {
      await proxy.stop();
      await s3.stop();
    }
  });

  it("sync --optimize moves a WAL database to 64 KiB pages before the snapshot, and it restores", async () => {
    const wal = join(dir, "optimize.db");
    await makeDb(wal, 200, { mode: "wal", payload: 1500 });
    const result = await tessera(
      "sync",
      wal,
      "--optimize",
      "--store",
      store,
      "--spool",
      join(dir, "spool3"),
      "--json",
    );
    assert.equal(result.code, 0, result.err);
    const report = JSON.parse(result.out);
    const shown = JSON.parse(
      (await tessera("manifest", "--name", report.name, "--store", store, "--json")).out,
    );
    assert.equal(shown.pageSize, 65536);
    const source = createClient({ url: `file:${wal}` });
    const mode = (await source.execute("PRAGMA journal_mode")).rows[0]?.[0];
    const rows = (await source.execute("SELECT count(*) FROM items")).rows[0]?.[0];
    source.close();
    assert.equal(mode, "wal", "the journal mode is put back");
    assert.equal(Number(rows), 200);
    const out = join(dir, "optimized-restored.db");
    assert.equal((await tessera("restore", "--name", report.name, "--store", store, "--out", out)).code, 0);
    const restored = createClient({ url: `file:${out}` });
    assert.equal((await restored.execute("PRAGMA integrity_check")).rows[0]?.[0], "ok");
    assert.equal(Number((await restored.execute("SELECT count(*) FROM items")).rows[0]?.[0]), 200);
    restored.close();
  });

  it("scripts/restore.ts restores from a script", async () => {
    const out = join(dir, "from-script.db");
    const result = await runScript("scripts/restore.ts", ["--store", store, "--name", name, "--out", out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`restored ${name.replace(/[.%]/g, "\\$&")} sequence 2`));
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "script restore");
  });
});
