import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createClient } from "@libsql/client";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readdir, readFile, stat, unlink } from "node:fs/promises";
import { join, relative } from "node:path";
import process from "node:process";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { manifestKey, pointerKey } from "../../src/manifest/keys.ts";
import { damageStoredChunk, referencedKeys, storedChunks } from "../_helpers/stored.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { snapshotToDirectory, verifySnapshot } from "../../src/snapshot/directory.ts";
import { parseWal } from "../../src/write/wal.ts";
import { LocalStore } from "../../src/store/local.ts";
import { assertBytes, rejectsWithCode } from "../_helpers/assert.ts";
import { isDeno, ROOT } from "../_helpers/run.ts";
import { checkWriterDb, isCommittedState } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { makeDb, startWriter } from "../_helpers/writer.ts";

/** Runs the test writer until it has committed `rows`, then kills it with SIGKILL: its -wal (with
 * frames no checkpoint has copied) and -shm stay behind, as after a crash. Returns the last commit seen. */
async function crashWriter(path: string, rows: number): Promise<number> {
  const script = "test/_helpers/writer_main.ts";
  const args = [path, "--mode", "wal", "--count", "1000000", "--payload", "3000"];
  const child = spawn(process.execPath, isDeno ? ["run", "-A", script, ...args] : [script, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    let text = "";
    child.stdout.on("data", (d: Uint8Array) => {
      text += new TextDecoder().decode(d);
      for (const m of text.matchAll(/committed (\d+)\n/g)) seen = Math.max(seen, Number(m[1]));
      if (seen >= rows) resolve();
    });
    child.on("close", (code) => reject(new Error(`writer exited early (${code})`)));
  });
  child.kill("SIGKILL");
  await exited;
  return seen;
}

function walState(path: string): string {
  try {
    const wal = parseWal(new Uint8Array(readFileSync(path)));
    return wal ? `${wal.salt1}:${wal.salt2}:${wal.frames}` : "empty";
  } catch {
    return "absent";
  }
}

/** Blocks the event loop (and so the snapshot's open read transaction) until another process commits to
 * the WAL database at `db`; true when one did within 30 s. The database file itself is never opened here:
 * closing a descriptor on it would drop this process's SQLite locks. */
function waitForWalCommit(db: string): boolean {
  const start = walState(`${db}-wal`);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (walState(`${db}-wal`) !== start) return true;
    Atomics.wait(sleeper, 0, 0, 5);
  }
  return false;
}

async function restoreFrom(dir: string, out: string) {
  const store = new LocalStore(dir);
  const [name] = await readdir(join(dir, "dbs"));
  const { manifest } = await loadLatest(store, name as string);
  const result = await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  return { manifest, result };
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Flips one byte in the payload of a stored chunk of the newest snapshot in `dir`; returns its key. */
async function damageChunk(dir: string, name: string): Promise<string> {
  const store = new LocalStore(dir);
  const { manifest } = await loadLatest(store, name);
  const [chunk] = await storedChunks(store, manifest);
  assert.ok(chunk, "the snapshot stores at least one chunk");
  return await damageStoredChunk(store, chunk);
}

describe("snapshotToDirectory()", () => {
  let dir: string;
  let n = 0;
  const fresh = async (label: string) => {
    const base = join(dir, `${++n}-${label}`);
    await mkdir(base, { recursive: true });
    return {
      db: join(base, "app.db"),
      snap: join(base, "shared", "ckpt"),
      spoolDir: join(base, "spool"),
      base,
    };
  };

  before(async () => {
    dir = await makeTempDir("dir-snapshot");
  });
  after(() => removeDir(dir));

  it("snapshots a rollback-journal database while a writer commits, into a directory holding only the snapshot", async () => {
    const t = await fresh("rollback");
    const writer = await startWriter(t.db, { mode: "delete", payload: 3000 });
    let report;
    try {
      await writer.waitFor(40);
      report = await snapshotToDirectory(t.db, t.snap, { hostname: "h1", spoolDir: t.spoolDir });
      await writer.waitFor(writer.committed + 5); // the writer goes on once the snapshot is done
    } finally {
      await writer.stop();
    }
    assert.equal(report.sequence, 1);
    assert.equal(report.directory, t.snap);
    assert.deepEqual(report.removed, []);
    assert.equal(report.verified, null);
    const out = join(t.base, "newroot", "deep", "app.db");
    await mkdir(join(t.base, "newroot", "deep"), { recursive: true });
    const { manifest, result } = await restoreFrom(t.snap, out);
    assert.equal(result.sha256, report.imageSha256);
    assert.equal(result.imageVerified, true, "a directory snapshot always records the image's SHA-256");
    const state = await checkWriterDb(out);
    assert.ok(isCommittedState(state), JSON.stringify(state));
    assert.ok(state.last >= 40, `the snapshot holds the ${state.last} commits made before it`);
    // Exactly the snapshot: its manifest, its pointer, and the chunk files it lists (no temporary files).
    const expected = [
      ...await referencedKeys(new LocalStore(t.snap), manifest),
      manifestKey(report.name, 1),
      pointerKey(report.name),
    ].sort();
    assert.deepEqual(await filesUnder(t.snap), expected);
  });

  it("lets a WAL writer commit while the snapshot's read transaction is open, and captures one committed state", async () => {
    const t = await fresh("wal");
    const writer = await startWriter(t.db, { mode: "wal", payload: 3000 });
    let report;
    let moved = false;
    let calls = 0;
    try {
      await writer.waitFor(40);
      report = await snapshotToDirectory(t.db, t.snap, {
        hostname: "h1",
        spoolDir: t.spoolDir,
        verify: true,
        // Called between reads, inside the read transaction: block it until the writer commits.
        onProgress: () => {
          if (calls++ === 0) moved = waitForWalCommit(t.db);
        },
      });
    } finally {
      await writer.stop();
    }
    assert.ok(moved, "the writer committed while the snapshot was being copied");
    const out = join(t.base, "restored.db");
    const { result } = await restoreFrom(t.snap, out);
    assert.equal(result.sha256, report.imageSha256);
    assert.equal(report.verified?.sha256, report.imageSha256);
    const state = await checkWriterDb(out);
    assert.ok(isCommittedState(state), JSON.stringify(state));
    assert.ok(state.last < writer.committed, `snapshot ${state.last} predates commit ${writer.committed}`);
    const image = new Uint8Array(await readFile(out));
    assert.deepEqual([image[18], image[19]], [2, 2], "the image is still a WAL-mode database");
  });

  it("verifySnapshot() reads every chunk file back and names the one that is damaged or missing", async () => {
    const t = await fresh("verify");
    await makeDb(t.db, 60, { payload: 3000 });
    const report = await snapshotToDirectory(t.db, t.snap, { hostname: "h1", spoolDir: t.spoolDir });
    const store = new LocalStore(t.snap);
    const good = await verifySnapshot(store, report.name, { sequence: 1, sha256: report.imageSha256! });
    assert.equal(good.sha256, sha256(new Uint8Array(await readFile(t.db))));
    assert.equal(good.bytes, report.imageLength);
    assert.ok(good.chunksRead >= 1);
    await rejectsWithCode(
      verifySnapshot(store, report.name, { sha256: "0".repeat(63) + "1" }),
      "CHECKSUM_MISMATCH",
      /the database as read says 0{63}1/,
    );
    await rejectsWithCode(
      verifySnapshot(store, report.name, { sequence: 2 }),
      "CONFLICT",
      /names snapshot 1/,
    );
    const key = await damageChunk(t.snap, report.name);
    const damaged = await verifySnapshot(store, report.name).then(() => undefined, (e) => e);
    assert.ok(["CHECKSUM_MISMATCH", "CORRUPT_CHUNK"].includes(damaged?.code), String(damaged));
    assert.ok(damaged.message.includes(key), damaged.message);
    await unlink(join(t.snap, key));
    await rejectsWithCode(
      verifySnapshot(store, report.name),
      "NOT_FOUND",
      new RegExp(`${key}( at byte \\d+)?\\) is missing`),
    );
  });

  it("removeSource removes the database, its -wal and -shm after a verified snapshot that holds every commit", async () => {
    const t = await fresh("remove");
    const seen = await crashWriter(t.db, 30);
    assert.ok(await exists(`${t.db}-wal`) && await exists(`${t.db}-shm`), "the crash left -wal and -shm");
    const report = await snapshotToDirectory(t.db, t.snap, {
      hostname: "h1",
      spoolDir: t.spoolDir,
      removeSource: true,
    });
    assert.deepEqual(report.removed, [t.db, `${t.db}-wal`, `${t.db}-shm`]);
    assert.equal(report.verified?.sha256, report.imageSha256);
    for (const path of report.removed) assert.equal(await exists(path), false, `${path} is gone`);
    const out = join(t.base, "back", "app.db");
    await mkdir(join(t.base, "back"), { recursive: true });
    await restoreFrom(t.snap, out);
    const state = await checkWriterDb(out);
    assert.ok(isCommittedState(state), JSON.stringify(state));
    assert.ok(state.last >= seen, `the snapshot holds commit ${seen}, which was only in the -wal`);
  });

  it("removeSource refuses and keeps the source when a chunk file in the directory is damaged", async () => {
    const t = await fresh("damaged");
    await makeDb(t.db, 60, { payload: 3000 });
    const first = await snapshotToDirectory(t.db, t.snap, { hostname: "h1", spoolDir: t.spoolDir });
    const key = await damageChunk(t.snap, first.name);
    const before = new Uint8Array(await readFile(t.db));
    // The database is unchanged, so the second snapshot reuses the chunk files already there.
    const error = await snapshotToDirectory(t.db, t.snap, {
      hostname: "h1",
      spoolDir: t.spoolDir,
      removeSource: true,
    }).then(() => undefined, (e) => e);
    assert.ok(["CHECKSUM_MISMATCH", "CORRUPT_CHUNK"].includes(error?.code), String(error));
    assert.ok(error.message.includes(key), error.message);
    assertBytes(new Uint8Array(await readFile(t.db)), before, "the source database");
  });

  it("removeSource refuses while another connection holds a write transaction", async () => {
    const t = await fresh("busy");
    await makeDb(t.db, 30, { payload: 3000 });
    const holder = createClient({ url: `file:${t.db}` });
    const tx = await holder.transaction("write");
    try {
      await tx.execute("INSERT INTO items (k, payload) VALUES (1000, zeroblob(10))");
      await rejectsWithCode(
        snapshotToDirectory(t.db, t.snap, {
          hostname: "h1",
          spoolDir: t.spoolDir,
          removeSource: true,
          busyTimeoutMs: 50,
        }),
        "CONFLICT",
        /another connection is writing to it; nothing was removed; the snapshot in .* is complete/,
      );
    } finally {
      await tx.rollback();
      holder.close();
    }
    assert.ok(await exists(t.db), "the source is kept");
    const state = await checkWriterDb(t.db);
    assert.equal(state.last, 30);
    const { result } = await restoreFrom(t.snap, join(t.base, "r.db"));
    assert.equal(result.sha256, sha256(new Uint8Array(await readFile(t.db))), "the snapshot is complete");
  });

  it("removeSource refuses when a write lands after the snapshot", async () => {
    const t = await fresh("changed");
    const writer = await startWriter(t.db, { mode: "wal", payload: 3000 });
    let calls = 0;
    let moved = false;
    try {
      await writer.waitFor(20);
      const error = await snapshotToDirectory(t.db, t.snap, {
        hostname: "h1",
        spoolDir: t.spoolDir,
        removeSource: true,
        onProgress: () => {
          if (calls++ === 0) moved = waitForWalCommit(t.db);
        },
      }).then(() => undefined, (e) => e);
      assert.ok(moved, "a commit landed during the snapshot");
      assert.equal(error?.code, "CONFLICT", String(error));
      assert.match(error.message, /changed after the snapshot|another connection is writing/);
      assert.match(error.message, /nothing was removed/);
    } finally {
      await writer.stop();
    }
    assert.ok(await exists(t.db), "the source is kept");
    const state = await checkWriterDb(t.db);
    assert.equal(state.last, writer.committed, "every commit is still in the source");
  });
});
