import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../src/cli/main.ts";
import type { CliIo } from "../../src/cli/_io.ts";
import { checkWriterDb, isCommittedState } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { makeDb, startWriter } from "../_helpers/writer.ts";
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

function cpR(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("cp", ["-r", from, to], (error, _out, stderr) => (error ? reject(new Error(stderr)) : resolve()))
  );
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

describe("tessera snapshot and tessera restore DIR", () => {
  let dir: string;
  let tessera: ReturnType<typeof cli>;

  before(async () => {
    dir = await makeTempDir("cli-snapshot");
    tessera = cli({ TESSERA_HOSTNAME: "node7", TESSERA_CONFIG: "" });
  });
  after(() => removeDir(dir));

  it("--help documents the command and its exit codes, and tessera --help lists it", async () => {
    const help = await tessera("snapshot", "--help");
    assert.equal(help.code, 0);
    assert.match(help.out, /^Usage: tessera snapshot DB DIR/);
    assert.match(help.out, /--remove-source/);
    assert.match(help.out, /Exit codes: 0 snapshot written.*\n2 bad usage, 3 DB not found/);
    assert.equal((await tessera("help", "snapshot")).out, help.out);
    assert.match((await tessera("--help")).out, /\n {2}snapshot {2}Write a self-contained snapshot/);
    assert.match(
      (await tessera("restore", "--help")).out,
      /tessera restore DIR \[--name NAME\] --out NEWROOT/,
    );
  });

  it("exits 2 on bad usage and 3 when the database does not exist", async () => {
    const missingDir = await tessera("snapshot", join(dir, "x.db"));
    assert.equal(missingDir.code, 2);
    assert.match(missingDir.err, /give the database file and the directory/);
    const missing = await tessera("snapshot", join(dir, "nope.db"), join(dir, "nope-snap"), "--spool", dir);
    assert.equal(missing.code, 3, missing.err);
    assert.match(missing.err, /no such database file/);
    assert.equal(await exists(join(dir, "nope-snap")), false, "no directory is made for a missing database");
    const noDir = await tessera("restore", join(dir, "no-such-snapshot"), "--out", join(dir, "o.db"));
    assert.equal(noDir.code, 3);
    assert.match(noDir.err, /no-such-snapshot": no such directory/);
  });

  it("writes a snapshot DIR that restores into a new root, also from a cp -r copy of DIR", async () => {
    const db = join(dir, "app.db");
    await makeDb(db, 80, { payload: 2500 });
    const snap = join(dir, "shared", "ckpt");
    const made = await tessera("snapshot", db, snap, "--verify", "--json", "--spool", join(dir, "spool"));
    assert.equal(made.code, 0, made.err);
    const report = JSON.parse(made.out);
    assert.equal(report.directory, snap);
    assert.equal(report.sequence, 1);
    assert.equal(report.imageSha256, sha256(new Uint8Array(await readFile(db))));
    assert.equal(report.verified.sha256, report.imageSha256);
    assert.deepEqual(report.removed, []);
    assert.deepEqual((await readdir(snap)).filter((f) => !f.startsWith(".")).sort(), ["dbs", "packs"]);

    const out = join(dir, "newroot", "var", "lib", "app.db");
    const restored = await tessera("restore", snap, "--out", out, "--json");
    assert.equal(restored.code, 0, restored.err);
    assert.equal(JSON.parse(restored.out).sha256, report.imageSha256);
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "restored database");

    const copy = join(dir, "elsewhere", "ckpt-copy");
    await mkdir(join(dir, "elsewhere"));
    await cpR(snap, copy);
    const listed = await tessera("ls", "--store", copy, "--json");
    assert.equal(listed.code, 0, listed.err);
    assert.equal(JSON.parse(listed.out).name, report.name);
    const fromCopy = join(dir, "from-copy", "app.db");
    const again = await tessera("restore", copy, "--out", fromCopy);
    assert.equal(again.code, 0, again.err);
    assertBytes(
      new Uint8Array(await readFile(fromCopy)),
      new Uint8Array(await readFile(db)),
      "restored from copy",
    );
  });

  it("restore DIR asks for --name when DIR holds several databases, and refuses DIR with --store", async () => {
    const snap = join(dir, "multi");
    const a = join(dir, "a.db");
    const b = join(dir, "b.db");
    await makeDb(a, 10, { payload: 2500 });
    await makeDb(b, 20, { payload: 2500 });
    for (const [db, name] of [[a, "alpha"], [b, "beta"]] as const) {
      const made = await tessera("snapshot", db, snap, "--name", name, "--spool", join(dir, "spool"));
      assert.equal(made.code, 0, made.err);
    }
    const ambiguous = await tessera("restore", snap, "--out", join(dir, "m.db"));
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.err, /holds 2 databases; choose one with --name: alpha, beta/);
    const chosen = await tessera("restore", snap, "--name", "beta", "--out", join(dir, "m.db"));
    assert.equal(chosen.code, 0, chosen.err);
    assert.equal((await checkWriterDb(join(dir, "m.db"))).last, 20);
    const both = await tessera(
      "restore",
      snap,
      "--store",
      snap,
      "--name",
      "beta",
      "--out",
      join(dir, "n.db"),
    );
    assert.equal(both.code, 2);
    assert.match(both.err, /either a snapshot directory DIR or --store, not both\n/);
    // A database name where DIR goes, with --store: the hint says how to name it.
    const named = await tessera("restore", "alpha", "--store", snap, "--out", join(dir, "o.db"));
    assert.equal(named.code, 2);
    assert.match(
      named.err,
      /not both \(to restore the database named "alpha" from the store, give --name alpha\)/,
    );
    assert.equal(existsSync(join(dir, "o.db")), false);
  });

  it("--remove-source removes a WAL database and its sidecars after a verified snapshot", async () => {
    const db = join(dir, "evict.db");
    const writer = await startWriter(db, { mode: "wal", payload: 2500, count: 1_000_000 });
    await writer.waitFor(30);
    const last = await writer.stop();
    const state = await checkWriterDb(db); // leaves this process's -wal and -shm beside the database
    assert.equal(state.last, last);
    const sidecars = [];
    for (const suffix of ["-wal", "-shm"]) if (await exists(db + suffix)) sidecars.push(db + suffix);
    assert.ok(sidecars.length > 0, "the database has a -wal or -shm to remove");
    const snap = join(dir, "evicted");
    const made = await tessera(
      "snapshot",
      db,
      snap,
      "--remove-source",
      "--json",
      "--spool",
      join(dir, "spool"),
    );
    assert.equal(made.code, 0, made.err);
    const report = JSON.parse(made.out);
    assert.deepEqual(report.removed, [db, ...sidecars]);
    for (const path of [db, `${db}-wal`, `${db}-shm`, `${db}-journal`]) {
      assert.equal(await exists(path), false, `${path} is removed`);
    }
    const out = join(dir, "evicted-back", "evict.db");
    const restored = await tessera("restore", snap, "--out", out, "--json");
    assert.equal(restored.code, 0, restored.err);
    assert.equal(JSON.parse(restored.out).sha256, report.verified.sha256);
    const back = await checkWriterDb(out);
    assert.ok(isCommittedState(back) && back.last === last, JSON.stringify(back));
  });

  it("--remove-source exits 1 and keeps the source when the snapshot does not read back intact", async () => {
    const db = join(dir, "keep.db");
    await makeDb(db, 40, { payload: 2500 });
    const snap = join(dir, "damaged");
    const first = await tessera("snapshot", db, snap, "--json", "--spool", join(dir, "spool"));
    assert.equal(first.code, 0, first.err);
    const { name } = JSON.parse(first.out);
    assert.ok(await exists(join(snap, "dbs", name, "pointer")));
    // Damage every pack file: the second snapshot finds them present and does not write them again.
    const packs = (await readdir(join(snap, "packs"), { recursive: true })).filter((f) => f.length > 60);
    assert.ok(packs.length > 0);
    for (const file of packs) {
      const path = join(snap, "packs", file);
      const bytes = new Uint8Array(await readFile(path));
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
      await writeFile(path, bytes);
    }
    const before = new Uint8Array(await readFile(db));
    const refused = await tessera("snapshot", db, snap, "--remove-source", "--spool", join(dir, "spool"));
    assert.equal(refused.code, 1);
    assert.match(
      refused.err,
      /Cannot verify snapshot 2 of "[^"]+" in file:\/\/.*damaged: chunk #\d+ at packs\/[0-9a-f]{2}\/[0-9a-f]{64} at byte \d+: /,
    );
    assert.match(refused.err, /keep\.db" was not removed \[(CHECKSUM_MISMATCH|CORRUPT_CHUNK)\]/);
    assertBytes(new Uint8Array(await readFile(db)), before, "the source database is kept");
  });
});
