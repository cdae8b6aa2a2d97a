import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { copyFile, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { LocalStore } from "../../src/store/local.ts";
import { checkWriterDb } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { assertBytes } from "../_helpers/assert.ts";
import { ageFiles, cli, objectKeys, referencedKeys } from "../history/_fixtures.ts";
import { makeDb } from "../_helpers/writer.ts";

const DAY = 24 * 3_600_000;

interface Line {
  sequence: number;
  created: string;
  createdMs: number;
  imageLength: number;
  current: boolean;
}

describe("tessera ls --history, restore --at, prune and touch", () => {
  let dir: string;
  let db: string;
  let store: string;
  let name: string;
  let tessera: ReturnType<typeof cli>;
  const states: string[] = [];

  async function change(sql: string): Promise<void> {
    const client = createClient({ url: `file:${db}` });
    await client.execute(sql);
    client.close();
  }

  async function sync(): Promise<void> {
    const result = await tessera(
      "sync",
      db,
      "--store",
      store,
      "--spool",
      join(dir, "spool"),
      "--chunk-size",
      "4096",
    );
    assert.equal(result.code, 0, result.err);
    name = result.out.trim();
    const copy = join(dir, `state-${states.length + 1}.db`);
    await copyFile(db, copy);
    states.push(copy);
    await new Promise((resolve) => setTimeout(resolve, 20)); // distinct creation times
  }

  async function history(): Promise<Line[]> {
    const result = await tessera("ls", "--history", "--name", name, "--store", store, "--json");
    assert.equal(result.code, 0, result.err);
    return result.out.trim().split("\n").map((line) => JSON.parse(line));
  }

  before(async () => {
    dir = await makeTempDir("history-cli");
    db = join(dir, "app.db");
    store = join(dir, "store");
    tessera = cli({ TESSERA_HOSTNAME: "history-host", TESSERA_CONFIG: "" });
    await makeDb(db, 200, { payload: 1500 });
    await sync();
    await change("UPDATE items SET payload = zeroblob(1500) WHERE k % 3 = 0");
    await sync();
    await change("INSERT INTO items (k, payload) SELECT k + 1000, payload FROM items WHERE k <= 50");
    await sync();
  });
  after(() => removeDir(dir));

  it("ls --history shows each snapshot's sequence, time and size, and marks the pointer's", async () => {
    const lines = await history();
    assert.deepEqual(lines.map((l) => l.sequence), [1, 2, 3]);
    assert.deepEqual(lines.map((l) => l.current), [false, false, true]);
    for (const [i, line] of lines.entries()) {
      assert.equal(line.imageLength, (await stat(states[i]!)).size);
      assert.equal(line.created, new Date(line.createdMs).toISOString());
    }
    assert.ok(lines[0]!.createdMs < lines[1]!.createdMs && lines[1]!.createdMs < lines[2]!.createdMs);
    const text = await tessera("ls", "--history", "--name", name, "--store", store);
    assert.equal(text.code, 0, text.err);
    const rows = text.out.trim().split("\n").slice(1);
    assert.equal(rows.length, 3);
    assert.match(rows[2]!, new RegExp(`^\\*\\s+3  ${lines[2]!.created}\\s+${lines[2]!.imageLength} bytes`));
    assert.match(rows[0]!, new RegExp(`^ \\s+1  ${lines[0]!.created}\\s+${lines[0]!.imageLength} bytes`));
  });

  it("restore --at restores the newest snapshot taken at or before the time", async () => {
    const lines = await history();
    for (
      const [at, state] of [[lines[1]!.createdMs - 1, 0], [lines[1]!.createdMs, 1], [Date.now(), 2]] as const
    ) {
      const out = join(dir, `at-${at}.db`);
      const result = await tessera(
        "restore",
        "--name",
        name,
        "--store",
        store,
        "--at",
        new Date(at).toISOString(),
        "--out",
        out,
        "--json",
      );
      assert.equal(result.code, 0, result.err);
      assert.equal(JSON.parse(result.out).sequence, state + 1);
      assert.equal((await checkWriterDb(out)).integrity, "ok");
      assertBytes(
        new Uint8Array(await readFile(out)),
        new Uint8Array(await readFile(states[state]!)),
        `state ${state + 1}`,
      );
    }
    const ago = await tessera(
      "restore",
      "--name",
      name,
      "--store",
      store,
      "--at",
      "1h",
      "--out",
      join(dir, "ago.db"),
    );
    assert.equal(ago.code, 3, "an hour ago there was no snapshot yet");
  });

  it("restore --at explains a time before the first snapshot, junk, and --at with --sequence", async () => {
    const lines = await history();
    const early = await tessera(
      "restore",
      "--name",
      name,
      "--store",
      store,
      "--at",
      "2000-01-01T00:00:00Z",
      "--out",
      join(dir, "early.db"),
    );
    assert.equal(early.code, 3);
    assert.ok(early.err.includes(`No snapshot of database "${name}"`), early.err);
    assert.ok(early.err.includes(`the earliest kept is from ${lines[0]!.created}`), early.err);
    const junk = await tessera(
      "restore",
      "--name",
      name,
      "--store",
      store,
      "--at",
      "yesterday-ish",
      "--out",
      join(dir, "junk.db"),
    );
    assert.equal(junk.code, 2);
    assert.match(junk.err, /--at "yesterday-ish" is not a time/);
    const both = await tessera(
      "restore",
      "--name",
      name,
      "--store",
      store,
      "--at",
      "1h",
      "--sequence",
      "1",
      "--out",
      join(dir, "both.db"),
    );
    assert.equal(both.code, 2);
    assert.match(both.err, /without --sequence/);
  });

  it("prune needs a rule and a database, shows a dry run, then deletes the old manifests only", async () => {
    const none = await tessera("prune", "--name", name, "--store", store);
    assert.equal(none.code, 2);
    assert.match(none.err, /at least one rule/);
    const bad = await tessera("prune", "--name", name, "--store", store, "--keep-within", "7 days");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--keep-within: Invalid duration "7 days"/);
    const nobody = await tessera("prune", "--name", "nobody", "--store", store, "--keep-last", "1");
    assert.equal(nobody.code, 3);
    const chunksBefore = await objectKeys(new LocalStore(store));

    const dry = await tessera(
      "prune",
      "--name",
      name,
      "--store",
      store,
      "--keep-last",
      "1",
      "--dry-run",
      "--json",
    );
    assert.equal(dry.code, 0, dry.err);
    const plan = JSON.parse(dry.out);
    assert.deepEqual(plan.deleted.map((e: { sequence: number }) => e.sequence), [1, 2]);
    assert.deepEqual(plan.kept.map((e: { reasons: string[] }) => e.reasons), [["pointer", "last"]]);
    assert.equal((await history()).length, 3, "a dry run deletes nothing");

    const real = await tessera("prune", "--all", "--store", store, "--keep-last", "1");
    assert.equal(real.code, 0, real.err);
    assert.match(real.out, /kept 1, deleted 2\n/);
    assert.deepEqual((await history()).map((l) => l.sequence), [3]);
    assert.deepEqual(await objectKeys(new LocalStore(store)), chunksBefore, "no chunk deleted");
    const gone = await tessera(
      "restore",
      "--name",
      name,
      "--store",
      store,
      "--sequence",
      "1",
      "--out",
      join(dir, "gone.db"),
    );
    assert.equal(gone.code, 3);
    assert.match(gone.err, /retention policy may have pruned it/);
  });

  it("gc refuses a grace period under 30 minutes", async () => {
    const result = await tessera("gc", "--store", store, "--grace", "10m");
    assert.equal(result.code, 2);
    assert.match(result.err, /--grace: .*the shortest is 30m/);
  });

  it("touch rewrites old packs and chunks with the same bytes, leaves fresh ones, and reports damaged ones", async () => {
    const age = async () => {
      // A small database lists its chunks inline: there may be no index chunk, and no chunks/ folder.
      await ageFiles(join(store, "chunks"), 3 * DAY).catch(() => 0);
      await ageFiles(join(store, "packs"), 3 * DAY);
    };
    await age();
    const keys = await objectKeys(new LocalStore(store));
    // A pack the newest snapshot keeps data in (touch renews those).
    const newest = await referencedKeys(
      new LocalStore(store),
      (await loadLatest(new LocalStore(store), name)).manifest,
    );
    const packKey = [...newest].sort().find((key) => key.startsWith("packs/"))!;
    const sample = join(store, packKey);
    const bytes = await readFile(sample);
    const dry = await tessera(
      "touch",
      "--name",
      name,
      "--store",
      store,
      "--older-than",
      "2d",
      "--dry-run",
      "--json",
    );
    assert.equal(dry.code, 0, dry.err);
    const planned = JSON.parse(dry.out);
    assert.ok(planned.touched > 0 && planned.touched === planned.chunks, dry.out);
    assert.ok(Date.now() - (await stat(sample)).mtimeMs > 2 * DAY, "a dry run writes nothing");

    const real = await tessera("touch", "--name", name, "--store", store, "--older-than", "2d", "--json");
    assert.equal(real.code, 0, real.err);
    const report = JSON.parse(real.out);
    assert.equal(report.touched, planned.touched);
    assert.deepEqual(report.missing, []);
    const renewed = [];
    for (const key of keys) renewed.push(Date.now() - (await stat(join(store, key))).mtimeMs < DAY);
    assert.equal(renewed.filter(Boolean).length, report.touched);
    assertBytes(new Uint8Array(await readFile(sample)), new Uint8Array(bytes), "a touched chunk's bytes");
    const again = JSON.parse(
      (await tessera("touch", "--all", "--store", store, "--older-than", "2d", "--json")).out,
    );
    assert.equal(again.touched, 0);
    assert.equal(again.fresh, report.chunks);

    const damaged = new Uint8Array(bytes);
    damaged[4] = 9; // a format version no Tessera knows
    await writeFile(sample, damaged);
    await age();
    const bad = await tessera("touch", "--name", name, "--store", store, "--older-than", "2d");
    assert.equal(bad.code, 1);
    assert.ok(bad.out.includes(`DAMAGED  ${packKey}`), bad.out);
    assertBytes(new Uint8Array(await readFile(sample)), damaged, "a damaged chunk is left for the user");
  });

  it("prints help with exit codes for prune, gc and touch, and lists them in tessera --help", async () => {
    for (const command of ["prune", "gc", "touch"]) {
      const help = await tessera(command, "--help");
      assert.equal(help.code, 0);
      assert.match(help.out, new RegExp(`^Usage: tessera ${command} `));
      assert.match(help.out, /Exit codes: 0 /);
      assert.match((await tessera("--help")).out, new RegExp(`\\n  ${command} +\\S`));
    }
  });
});
