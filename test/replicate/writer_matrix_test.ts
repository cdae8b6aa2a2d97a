/**
 * The writer matrix: a database replicated while real writer processes change it the way users' programs
 * do (Python's sqlite3 and the sqlite3 CLI: long-lived and short-lived connections, several at once,
 * checkpoints of every kind, VACUUM, journal-mode switches, the file replaced or recreated, the page size
 * changed), then the store checked against the source. Consumers: the replicator, repeated syncs, and
 * createReplicatingClient where the application's own client is the writer.
 *
 * For every case: every published snapshot restores to a committed state that passes integrity_check, no
 * snapshot goes backwards, and after the writer stops, a checkpoint and a flush (or a last sync) the newest
 * snapshot is byte for byte the source file.
 */

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { listHistory, loadSequence } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { createReplicatingClient } from "../../src/replicate/client.ts";
import { Replicator, type ReplicatorEvent } from "../../src/replicate/replicator.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { isDeno, ROOT, runScript } from "../_helpers/run.ts";
import {
  checkWriterDb,
  checkWriterImage,
  isCommittedState,
  type WriterState,
} from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { pointerSequence } from "./_outage.ts";

const WORKLOAD = join(ROOT, "test/_helpers/sqlite_workload.py");
/** Captures in the descriptor test: one descriptor kept per capture, or per few, shows far above its slack of 2. */
const CAPTURES = 100;

interface Case {
  name: string;
  workload: string;
  init: "wal" | "delete";
  commits?: number;
}

const CASES: Case[] = [
  { name: "a long-lived connection (WAL)", workload: "long-lived-wal", init: "wal" },
  { name: "a long-lived connection (rollback journal)", workload: "long-lived-delete", init: "delete" },
  { name: "short-lived processes (WAL)", workload: "short-lived", init: "wal" },
  { name: "short-lived processes (rollback journal)", workload: "short-lived", init: "delete" },
  { name: "three short-lived writers at once (WAL)", workload: "concurrent-short", init: "wal" },
  { name: "the sqlite3 CLI (WAL)", workload: "sqlite3-cli", init: "wal" },
  { name: "checkpoints PASSIVE, FULL, RESTART and TRUNCATE", workload: "checkpoints", init: "wal" },
  { name: "VACUUM (WAL)", workload: "vacuum", init: "wal" },
  { name: "VACUUM (rollback journal)", workload: "vacuum", init: "delete" },
  { name: "switches between WAL and rollback journal", workload: "journal-switch", init: "wal" },
  { name: "the file replaced by an atomic rename", workload: "replace-rename", init: "delete" },
  { name: "the file deleted and created again", workload: "delete-recreate", init: "wal" },
  { name: "a page size change with VACUUM", workload: "page-size", init: "delete" },
];

function python(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("python3", [WORKLOAD, ...args], { timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`sqlite_workload.py ${args.join(" ")} failed: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

// Runs a workload to its end and returns the last committed k it reports.
async function runWorkload(c: Case, db: string): Promise<number> {
  const out = await python([c.workload, db, String(c.commits ?? 24)]);
  const m = /done (\d+)/.exec(out);
  assert.ok(m, `the workload reports its last commit: ${out}`);
  return Number(m[1]);
}

// A TRUNCATE checkpoint by another process, so the file holds every commit (harmless in rollback mode).
async function checkpoint(db: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn("python3", [
      "-c",
      `import sqlite3; d = sqlite3.connect(${JSON.stringify(db)}, timeout=20); ` +
      `d.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(); d.close()`,
    ]);
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`checkpoint exited ${code}`))));
  });
}

// Checks the whole history and returns the newest snapshot's bytes.
async function checkHistory(store: BlobStore, name: string, work: string): Promise<Uint8Array> {
  const history = await listHistory(store, name);
  assert.ok(history.length >= 2, `several snapshots were published (${history.length})`);
  let previous: WriterState | undefined;
  let newest = new Uint8Array(0);
  for (const entry of history) {
    const { manifest } = await loadSequence(store, name, entry.sequence);
    const out = join(work, `restored-${entry.sequence}.db`);
    await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
    const state = await checkWriterDb(out);
    assert.ok(
      isCommittedState(state),
      `snapshot ${entry.sequence} is a committed state: ${JSON.stringify(state)}`,
    );
    assert.ok(
      !previous || state.last >= previous.last,
      `snapshot ${entry.sequence} (last ${state.last}) does not go back from ${previous?.last}`,
    );
    previous = state;
    newest = new Uint8Array(await readFile(out));
  }
  const pointer = await pointerSequence(store, name);
  assert.equal(pointer, history[history.length - 1]?.sequence, "the pointer names the newest snapshot");
  return newest;
}

async function assertSameAsSource(newest: Uint8Array, db: string, last: number): Promise<void> {
  const source = await checkWriterDb(db);
  assert.equal(source.last, last, "the source holds the workload's last commit");
  const bytes = new Uint8Array(await readFile(db));
  assert.equal(newest.length, bytes.length, "the newest snapshot has the source's length");
  assert.ok(
    Buffer.from(newest).equals(Buffer.from(bytes)),
    "the newest snapshot is the source, byte for byte",
  );
}

describe("writer matrix", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("matrix");
  });
  after(async () => {
    await removeDir(dir);
  });

  for (const c of CASES) {
    it(`the replicator publishes every state of ${c.name}`, async () => {
      const work = join(dir, `r-${c.workload}-${c.init}`);
      const db = join(work, "app.db");
      await makeDir(work);
      await python([`init-${c.init}`, db]);
      const store = new LocalStore(join(work, "store"));
      const events: ReplicatorEvent[] = [];
      const replicator = await Replicator.start(db, {
        stores: [store],
        hostname: "matrix",
        spoolDir: join(work, "spool"),
        debounceMs: 20,
        maxDelayMs: 150,
        pollIntervalMs: 50,
        onEvent: (e) => events.push(e),
      });
      try {
        const last = await runWorkload(c, db);
        await checkpoint(db);
        const flushed = await replicator.flush({ timeoutMs: 30_000 });
        assert.equal(flushed.pending, 0, "everything captured is published");
        assert.equal(replicator.status().error ?? null, null, "the replicator reports no fatal error");
        assert.ok(!events.some((e) => e.type === "fatal"), "no fatal event");
        const newest = await checkHistory(store, replicator.name, work);
        await assertSameAsSource(newest, db, last);
      } finally {
        await replicator.close();
      }
    });

    it(`repeated syncs publish only committed states of ${c.name}`, async () => {
      const work = join(dir, `s-${c.workload}-${c.init}`);
      const db = join(work, "app.db");
      await makeDir(work);
      await python([`init-${c.init}`, db]);
      const store = new LocalStore(join(work, "store"));
      const options = { stores: [store], hostname: "matrix", spoolDir: join(work, "spool") };
      let name = (await syncDatabase(db, options)).name;
      let running = true;
      const failures: string[] = [];
      const loop = (async () => {
        while (running) {
          try {
            name = (await syncDatabase(db, options)).name;
          } catch (error) {
            // The file is missing while a workload deletes it; any other failure is reported below.
            const text = String(error);
            if (!/no such database file|0 pages|NOT_FOUND/.test(text)) failures.push(text);
          }
          await new Promise((resolve) => setTimeout(resolve, 60));
        }
      })();
      let last: number;
      try {
        last = await runWorkload(c, db);
      } finally {
        running = false;
        await loop;
      }
      await checkpoint(db);
      await syncDatabase(db, options);
      assert.deepEqual(failures, [], "no sync failed but for a missing file");
      const newest = await checkHistory(store, name, work);
      await assertSameAsSource(newest, db, last);
    });
  }

  for (const mode of ["wal", "delete"] as const) {
    it(`createReplicatingClient publishes its own writes through checkpoints, VACUUM and journal switches (${mode})`, async () => {
      const work = join(dir, `c-${mode}`);
      const db = join(work, "app.db");
      await makeDir(work);
      await python([`init-${mode}`, db]);
      const store = new LocalStore(join(work, "store"));
      const client = await createReplicatingClient({
        url: `file:${db}`,
        store,
        hostname: "matrix",
        spoolDir: join(work, "spool"),
        debounceMs: 10,
      });
      let last = 20;
      try {
        const commit = async () => {
          last++;
          await client.batch([
            { sql: "INSERT INTO items (k, payload) VALUES (?, randomblob(2000))", args: [last] },
            { sql: "UPDATE meta SET last = ? WHERE id = 1", args: [last] },
          ], "write");
        };
        const steps = [
          "PRAGMA wal_checkpoint(PASSIVE)",
          "PRAGMA wal_checkpoint(FULL)",
          "PRAGMA wal_checkpoint(RESTART)",
          "PRAGMA wal_checkpoint(TRUNCATE)",
          "VACUUM",
          `PRAGMA journal_mode = ${mode === "wal" ? "delete" : "wal"}`,
          "VACUUM",
          `PRAGMA journal_mode = ${mode}`,
        ];
        for (const step of steps) {
          await commit();
          await commit();
          await client.execute(step);
          await client.flush();
        }
        await commit();
        await client.execute("PRAGMA wal_checkpoint(TRUNCATE)");
        await client.flush();
      } finally {
        await client.closeAsync();
      }
      const name = client.replicator.name;
      const newest = await checkHistory(store, name, work);
      await assertSameAsSource(newest, db, last);
    });
  }

  it(`keeps its descriptors across ${CAPTURES} captures of short-lived writers`, async () => {
    const work = join(dir, "fds");
    const db = join(work, "app.db");
    await makeDir(work);
    await python(["init-wal", db]);
    const store = new LocalStore(join(work, "store"));
    const replicator = await Replicator.start(db, {
      stores: [store],
      hostname: "matrix",
      spoolDir: join(work, "spool"),
      watch: false,
      pollIntervalMs: 60_000,
    });
    const fds = () => openDescriptors();
    try {
      // One Python process commits on a new connection each time it is asked: open, commit, close.
      const writer = spawn("python3", [
        "-u",
        "-c",
        `import sqlite3, sys
for line in sys.stdin:
    d = sqlite3.connect(${JSON.stringify(db)}, timeout=20, isolation_level=None)
    d.execute("BEGIN IMMEDIATE")
    k = d.execute("SELECT last FROM meta").fetchone()[0] + 1
    d.execute("INSERT INTO items (k, payload) VALUES (?, randomblob(500))", (k,))
    d.execute("UPDATE meta SET last = ? WHERE id = 1", (k,))
    d.execute("COMMIT")
    d.close()
    print(k, flush=True)`,
      ]);
      const answers: string[] = [];
      let partial = "";
      writer.stdout.on("data", (d: Uint8Array) => {
        partial += new TextDecoder().decode(d);
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        answers.push(...lines);
      });
      const commit = async (n: number) => {
        writer.stdin.write("go\n");
        while (answers.length < n) await new Promise((resolve) => setTimeout(resolve, 2));
      };
      await commit(1);
      await replicator.captureNow();
      const start = fds();
      let lastK = 0;
      for (let i = 2; i <= CAPTURES + 1; i++) {
        await commit(i);
        await replicator.captureNow();
        lastK = Number(answers[i - 1]);
      }
      // A reader process that has just finished may not have closed its pipes yet on a loaded machine: a
      // few descriptors for a moment, where a leak would hold one or more per capture for good.
      let end = fds();
      for (const since = Date.now(); end.total > start.total + 2 && Date.now() - since < 5_000; end = fds()) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      writer.stdin.end();
      await replicator.flush({ timeoutMs: 30_000 });
      console.log(
        `descriptors: ${start.total} before, ${end.total} after ${CAPTURES} captures; on the database: ${start.db} / ${end.db}`,
      );
      assert.equal(end.db, 0, "no descriptor of the database, -wal or -shm is held between captures");
      assert.ok(end.total <= start.total + 2, `descriptors do not grow: ${start.total} -> ${end.total}`);
      const state = await checkWriterDb(db);
      assert.equal(state.last, lastK);
      const newest = await checkHistory(store, replicator.name, work);
      assert.equal(
        (await checkWriterImage(newest)).last,
        lastK,
        "the newest snapshot holds the last commit",
      );
    } finally {
      await replicator.close();
    }
  });
});

function openDescriptors(): { total: number; db: number } {
  let total = 0;
  let db = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    total++;
    try {
      if (/\/fds\/app\.db/.test(readlinkSync(`/proc/self/fd/${fd}`))) db++;
    } catch {
      // Closed while listed.
    }
  }
  return { total, db };
}

async function makeDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
}

describe("tessera replicate and tessera sync, as processes, with short-lived Python writers (WAL)", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("matrix-cli");
  });
  after(async () => {
    await removeDir(dir);
  });

  it("a SIGTERM'd tessera replicate has published every commit, and so has the last tessera sync", async () => {
    const db = join(dir, "app.db");
    await python(["init-wal", db]);
    const argv = [
      "src/cli/main.ts",
      "replicate",
      db,
      "--store",
      join(dir, "store"),
      "--name",
      "app",
      "--spool",
      join(dir, "spool"),
      "--json",
    ];
    const child = spawn(process.execPath, isDeno ? ["run", "-A", ...argv] : argv, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    child.stderr.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (!out.includes('"started"')) {
      assert.ok(Date.now() < deadline, `tessera replicate started: ${out}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const last = await runWorkload(
      { name: "short-lived", workload: "short-lived", init: "wal", commits: 20 },
      db,
    );
    // Not child.kill(): Deno would report the signal it sent as the exit cause.
    process.kill(child.pid as number, "SIGTERM");
    assert.equal(await exited, 0, out);
    assert.match(out, /"flushed":true/);
    const restored = join(dir, "restored.db");
    const r = await runScript("src/cli/main.ts", [
      "restore",
      "--name",
      "app",
      "--store",
      join(dir, "store"),
      "--out",
      restored,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await checkWriterDb(restored)).last, last, "the restore holds the last short-lived commit");
    assert.equal(last, 40, "20 commits after the 20 of the initial database");

    // The same database, synced by separate tessera sync processes between more short-lived commits.
    const sync = () =>
      runScript("src/cli/main.ts", ["sync", db, "--store", join(dir, "synced"), "--name", "app", "--json"]);
    for (let i = 0; i < 3; i++) {
      await runWorkload({ name: "short-lived", workload: "short-lived", init: "wal", commits: 2 }, db);
      const s = await sync();
      assert.equal(s.code, 0, s.stderr);
    }
    const store = new LocalStore(join(dir, "synced"));
    await makeDir(join(dir, "synced-check"));
    const newest = await checkHistory(store, "app", join(dir, "synced-check"));
    assert.equal((await checkWriterImage(newest)).last, 46);
  });
});
