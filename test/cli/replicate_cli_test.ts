/**
 * `tessera replicate`, `tessera status` and `tessera flush` as real processes, against a real SQLite
 * file written by a real writer process and a directory store.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { leaseKey } from "../../src/manifest/keys.ts";
import { LocalStore } from "../../src/store/local.ts";
import { isDeno, ROOT, runScript } from "../_helpers/run.ts";
import { checkWriterDb } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { startWriter } from "../_helpers/writer.ts";
import { pointerSequence, restoredState, waitUntil } from "../replicate/_outage.ts";

const CLI = "src/cli/main.ts";

interface Running {
  child: ChildProcess;
  events: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<number | null>;
}

function startReplicate(args: string[]): Running {
  const argv = isDeno ? ["run", "-A", CLI, "replicate", ...args] : [CLI, "replicate", ...args];
  const child = spawn(process.execPath, argv, { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
  const events: Record<string, unknown>[] = [];
  let partial = "";
  let stderr = "";
  child.stdout?.on("data", (d: Uint8Array) => {
    partial += new TextDecoder().decode(d);
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) events.push(JSON.parse(line));
  });
  child.stderr?.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, events, stderr: () => stderr, exited };
}

// Deno's child_process reports any child it was asked to kill as killed by that signal, whatever its exit
// code; the signal is sent through process.kill so the exit code is the child's own.
function signal(run: Running, name: "SIGTERM" | "SIGINT"): void {
  process.kill(run.child.pid as number, name);
}

describe("tessera replicate", () => {
  it("replicates a live writer, answers status and flush, and flushes then exits 0 on SIGTERM", async () => {
    const work = await makeTempDir("cli-replicate");
    try {
      const db = join(work, "app.db");
      const storeDir = join(work, "store");
      const spool = join(work, "spool");
      const writer = await startWriter(db, { mode: "wal", pauseMs: 20, payload: 2000 });
      const run = startReplicate([
        db,
        "--store",
        storeDir,
        "--spool",
        spool,
        "--name",
        "app",
        "--json",
        "--debounce-ms",
        "20",
      ]);
      try {
        await waitUntil(
          () => run.events.some((e) => e.event === "started"),
          30_000,
          "started: " + run.stderr(),
        );
        await waitUntil(() => run.events.some((e) => e.event === "published"), 30_000, "a publish");
        const status = await runScript(CLI, ["status", "--name", "app", "--spool", spool, "--json"]);
        assert.equal(status.code, 0, status.stderr);
        const s = JSON.parse(status.stdout);
        assert.equal(s.name, "app");
        assert.equal(s.running, true);
        assert.ok(s.lastSync.sequence >= 1);
        assert.equal(s.targets.length, 1);
        const text = await runScript(CLI, ["status", "--spool", spool]);
        assert.equal(text.code, 0);
        assert.match(text.stdout, /^app {2}running \(pid \d+\)/);
        assert.match(text.stdout, /last sync {4}sequence \d+ at /);

        const last = await writer.stop();
        const flush = await runScript(CLI, ["flush", "--name", "app", "--spool", spool, "--json"]);
        assert.equal(flush.code, 0, flush.stderr + flush.stdout);
        const answer = JSON.parse(flush.stdout);
        assert.equal(answer.ok, true);
        assert.equal(answer.pending, 0);
        const store = new LocalStore(storeDir);
        const seq = await pointerSequence(store, "app");
        assert.equal(answer.sequence, seq);
        assert.equal(
          (await restoredState(store, "app", seq, work)).last,
          last,
          "flush published the last commit",
        );

        // One more commit, then SIGTERM: it is published before the process exits 0.
        const w2 = await startWriter(db, { mode: "wal", count: 1, payload: 2000 });
        await w2.waitFor(last + 1);
        await w2.stop();
        signal(run, "SIGTERM");
        assert.equal(await run.exited, 0, run.stderr());
        const exit = run.events.find((e) => e.event === "exit");
        assert.equal(exit?.flushed, true);
        const final = await pointerSequence(store, "app");
        assert.equal((await restoredState(store, "app", final, work)).last, last + 1);
        const after = await runScript(CLI, ["status", "--name", "app", "--spool", spool, "--json"]);
        assert.equal(JSON.parse(after.stdout).running, false);
      } finally {
        run.child.kill("SIGKILL");
        await writer.stop().catch(() => {});
      }
    } finally {
      await removeDir(work);
    }
  });

  it("restores a missing database first with --restore-if-missing, removing stale -wal and -shm", async () => {
    const work = await makeTempDir("cli-restore-missing");
    try {
      const db = join(work, "app.db");
      const storeDir = join(work, "store");
      const w = await startWriter(db, { mode: "wal", count: 4, payload: 2000 });
      await w.waitFor(4);
      await w.stop();
      const sync = await runScript(CLI, ["sync", db, "--store", storeDir, "--name", "app"]);
      assert.equal(sync.code, 0, sync.stderr);
      const lost = join(work, "lost.db");
      await writeFile(`${lost}-wal`, new Uint8Array(100).fill(7));
      await writeFile(`${lost}-shm`, new Uint8Array(100).fill(7));
      const run = startReplicate([
        lost,
        "--store",
        storeDir,
        "--spool",
        join(work, "spool"),
        "--name",
        "app",
        "--json",
        "--restore-if-missing",
      ]);
      try {
        await waitUntil(
          () => run.events.some((e) => e.event === "started"),
          30_000,
          "started: " + run.stderr(),
        );
        const restored = run.events.find((e) => e.event === "restored");
        assert.equal(restored?.sequence, 1);
        assert.deepEqual(restored?.removed, [`${lost}-wal`, `${lost}-shm`]);
        signal(run, "SIGINT");
        assert.equal(await run.exited, 0, run.stderr());
      } finally {
        run.child.kill("SIGKILL");
      }
      const state = await checkWriterDb(lost);
      assert.equal(state.integrity, "ok");
      assert.equal(state.last, 4);
    } finally {
      await removeDir(work);
    }
  });

  it("refuses a second replicator for the same database with exit 1 and a clear message", async () => {
    const work = await makeTempDir("cli-replicate-lease");
    try {
      const db = join(work, "app.db");
      const storeDir = join(work, "store");
      const w = await startWriter(db, { mode: "delete", count: 1 });
      await w.waitFor(1);
      await w.stop();
      const run = startReplicate([
        db,
        "--store",
        storeDir,
        "--spool",
        join(work, "s1"),
        "--name",
        "app",
        "--json",
      ]);
      try {
        await waitUntil(
          () => run.events.some((e) => e.event === "started"),
          30_000,
          "started: " + run.stderr(),
        );
        const second = await runScript(CLI, [
          "replicate",
          db,
          "--store",
          storeDir,
          "--spool",
          join(work, "s2"),
          "--name",
          "app",
          "--hostname",
          "elsewhere",
        ]);
        assert.equal(second.code, 1);
        assert.match(second.stderr, /Cannot replicate database "app".*holds its lease/);
        signal(run, "SIGTERM");
        assert.equal(await run.exited, 0);
      } finally {
        run.child.kill("SIGKILL");
      }
      assert.equal(
        existsSync(join(work, "s2", "replicate", "app", "owner.json")),
        false,
        "the refused one left no owner",
      );
    } finally {
      await removeDir(work);
    }
  });

  it("prints usage errors and help", async () => {
    const none = await runScript(CLI, ["replicate"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give the database file/);
    const help = await runScript(CLI, ["replicate", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--restore-if-missing/);
    const status = await runScript(CLI, ["status", "--spool", "/nonexistent-tessera-spool"]);
    assert.equal(status.code, 3);
    assert.match(status.stderr, /No replicator status/);
  });

  it("ls lists a database whose replicator has not published yet", async () => {
    const work = await makeTempDir("cli-ls-leased");
    try {
      const store = new LocalStore(join(work, "store"));
      await store.put(leaseKey("fresh"), new TextEncoder().encode("{}"));
      const ls = await runScript(CLI, ["ls", "--store", join(work, "store"), "--json"]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.deepEqual(JSON.parse(ls.stdout), { store: store.description, name: "fresh", sequence: null });
      const text = await runScript(CLI, ["ls", "--store", join(work, "store")]);
      assert.match(text.stdout, /fresh {2}no snapshot yet/);
    } finally {
      await removeDir(work);
    }
  });
});
