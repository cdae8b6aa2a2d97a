/**
 * Regressions found by reviewing the replicator: each test fails on the code before its fix. Real SQLite
 * files and directory stores; faults are injected in front of the store.
 */

import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { spawn } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { TesseraError } from "../../src/errors.ts";
import { loadSequence } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { Replicator, type ReplicatorEvent } from "../../src/replicate/replicator.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { BlobStore, PutOptions } from "../../src/store/types.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { startWriter } from "../_helpers/writer.ts";
import { OutageStore, pointerOf, pointerSequence, waitUntil } from "./_outage.ts";

async function rows(store: BlobStore, name: string, sequence: number, dir: string): Promise<string[]> {
  const { manifest } = await loadSequence(store, name, sequence);
  const out = join(dir, `rows-${sequence}-${crypto.randomUUID().slice(0, 6)}.db`);
  await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  const db = createClient({ url: `file:${out}` });
  try {
    return (await db.execute("SELECT v FROM t ORDER BY id")).rows.map((r) => String(r[0]));
  } finally {
    db.close();
  }
}

async function makeDb(path: string, mode = "wal") {
  const db = createClient({ url: `file:${path}` });
  await db.execute(`PRAGMA journal_mode=${mode}`);
  await db.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)");
  return db;
}

const FAST = { watch: false, pollIntervalMs: 50, debounceMs: 10, retryBaseMs: 50, retryMaxMs: 200 };

/** Applies a pointer PUT, then reports it failed: an answer lost after the write landed. */
class LostAnswerStore extends OutageStore {
  loseNextPointerAnswer = false;
  override async put(key: string, body: Uint8Array, options?: PutOptions) {
    const result = await super.put(key, body, options);
    if (this.loseNextPointerAnswer && key.endsWith("/pointer")) {
      this.loseNextPointerAnswer = false;
      throw new TesseraError("STORE_IO", `Cannot put "${key}": connection reset after the write landed`);
    }
    return result;
  }
}

describe("replicator regressions", () => {
  it("flush and close keep their timeout while commits keep coming", async () => {
    const work = await makeTempDir("reg-flush-bounded");
    try {
      const db = join(work, "app.db");
      const writer = await startWriter(db, { mode: "delete", payload: 4000 });
      await writer.waitFor(50);
      const store = new LocalStore(join(work, "store"));
      const replicator = await Replicator.start(db, {
        stores: [store],
        hostname: "h",
        spoolDir: join(work, "spool"),
        ...FAST,
        watch: true,
      });
      try {
        const before = writer.committed;
        // The writer never stops on its own: a flush that waited for quiet would never return.
        await replicator.flush({ timeoutMs: 300 });
        await replicator.close({ timeoutMs: 300 });
        await writer.waitFor(writer.committed + 5);
        assert.ok(writer.committed > before, "the writer was still committing when both returned");
      } finally {
        await writer.stop();
        await replicator.close({ flush: false });
      }
    } finally {
      await removeDir(work);
    }
  });

  it("adopts its own pointer when a publish's answer was lost, instead of a false CONFLICT", async () => {
    const work = await makeTempDir("reg-lost-answer");
    try {
      const path = join(work, "app.db");
      const db = await makeDb(path);
      const store = new LostAnswerStore(new LocalStore(join(work, "store")));
      const events: ReplicatorEvent[] = [];
      const replicator = await Replicator.start(path, {
        stores: [store],
        hostname: "h",
        spoolDir: join(work, "spool"),
        ...FAST,
        retryBaseMs: 1500,
        retryMaxMs: 1500,
        maxSpoolBytes: 1,
        onEvent: (e) => events.push(e),
      });
      try {
        await replicator.flush();
        store.loseNextPointerAnswer = true;
        await db.execute("INSERT INTO t(v) VALUES ('a')");
        await waitUntil(() => events.some((e) => e.type === "publish_failed"), 20_000, "the lost answer");
        // A newer image while the failed one waits for its retry: the spool bound drops the failed one.
        await db.execute("INSERT INTO t(v) VALUES ('b')");
        await replicator.captureNow();
        assert.ok(events.some((e) => e.type === "coalesced"));
        const flushed = await replicator.flush({ timeoutMs: 20_000 });
        assert.equal(flushed.pending, 0);
        assert.equal(replicator.error, null);
        const pointer = await pointerOf(store, replicator.name);
        assert.deepEqual(await rows(store, replicator.name, pointer?.sequence ?? 0, work), ["a", "b"]);
      } finally {
        await replicator.close({ flush: false });
        db.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("refuses a store that another writer published to while it was unreachable", async () => {
    const work = await makeTempDir("reg-late-foreign");
    try {
      const one = await makeDb(join(work, "one.db"));
      const two = await makeDb(join(work, "two.db"));
      await one.execute("INSERT INTO t(v) VALUES ('one')");
      await two.execute("INSERT INTO t(v) VALUES ('two')");
      const a = new LocalStore(join(work, "A"));
      const b = new OutageStore(new LocalStore(join(work, "B")));
      b.down = true;
      const first = await Replicator.start(join(work, "one.db"), {
        stores: [a, b],
        hostname: "host1",
        name: "shared",
        spoolDir: join(work, "s1"),
        ...FAST,
      });
      try {
        await first.flush({ timeoutMs: 300 });
        // Another host's replicator publishes to B meanwhile (B's lease was free: first could not take it).
        const other = await Replicator.start(join(work, "two.db"), {
          stores: [new LocalStore(join(work, "B"))],
          hostname: "host2",
          name: "shared",
          spoolDir: join(work, "s2"),
          ...FAST,
        });
        await other.close();
        b.down = false;
        await waitUntil(() => first.error !== null, 20_000, "the conflict");
        assert.match(first.error ?? "", /while the store was unreachable, writer "replicate:host2:/);
        assert.equal((await pointerOf(b, "shared"))?.writer.startsWith("replicate:host2:"), true);
      } finally {
        await first.close({ flush: false });
        one.close();
        two.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("continues past an older pointer of a store that was down at start, after its spool was lost", async () => {
    const work = await makeTempDir("reg-pointer-ahead");
    try {
      const path = join(work, "app.db");
      const db = await makeDb(path);
      const a = new OutageStore(new LocalStore(join(work, "A")));
      const b = new OutageStore(new LocalStore(join(work, "B")));
      const options = { hostname: "h", spoolDir: join(work, "spool"), ...FAST };
      a.down = true;
      let replicator = await Replicator.start(path, { ...options, stores: [a, b] });
      const name = replicator.name;
      let ahead = 0;
      for (const v of ["a", "b", "c"]) {
        await db.execute({ sql: "INSERT INTO t(v) VALUES (?)", args: [v] });
        // B publishes while A is down. Wait for the snapshot holding this row: on a loaded machine a fixed
        // wait lets two commits share one snapshot, and B's sequence is then not the number of commits.
        await waitUntil(
          async () => {
            ahead = await pointerSequence(b, name);
            return ahead > 0 && (await rows(b, name, ahead, work)).includes(v);
          },
          20_000,
          `B's snapshot holding "${v}"`,
        );
      }
      assert.deepEqual(await rows(b, name, ahead, work), ["a", "b", "c"]);
      await replicator.close({ flush: false });
      await rm(join(work, "spool"), { recursive: true });
      a.down = false;
      b.down = true;
      replicator = await Replicator.start(path, { ...options, stores: [a, b] });
      try {
        await replicator.flush({ timeoutMs: 300 });
        b.down = false;
        const flushed = await replicator.flush({ timeoutMs: 20_000 });
        assert.equal(flushed.pending, 0);
        assert.equal(replicator.error, null);
        const pb = await pointerOf(b, name);
        assert.ok((pb?.sequence ?? 0) > ahead, `B moved past its old pointer ${ahead} (${pb?.sequence})`);
        assert.deepEqual(await rows(b, name, pb?.sequence ?? 0, work), ["a", "b", "c"]);
      } finally {
        await replicator.close({ flush: false });
        db.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("publishes the current state when a pending entry was damaged", async () => {
    const work = await makeTempDir("reg-damaged-pending");
    try {
      const path = join(work, "app.db");
      const db = await makeDb(path);
      await db.execute("INSERT INTO t(v) VALUES ('a')");
      const store = new OutageStore(new LocalStore(join(work, "store")));
      const options = { stores: [store], hostname: "h", spoolDir: join(work, "spool"), ...FAST };
      store.down = true;
      let replicator = await Replicator.start(path, options);
      // At least one capture waits in the spool (a loaded machine may capture the state twice).
      const pending = (await replicator.flush({ timeoutMs: 200 })).pending;
      assert.ok(pending >= 1, `${pending} pending`);
      const name = replicator.name;
      await replicator.close({ flush: false });
      const pendingDir = join(work, "spool", "replicate", name, "pending");
      for (const file of await readdir(pendingDir)) await writeFile(join(pendingDir, file), "{ damaged");
      store.down = false;
      replicator = await Replicator.start(path, options);
      try {
        const flushed = await replicator.flush();
        assert.equal(flushed.pending, 0);
        const pointer = await pointerOf(store, name);
        assert.ok(pointer, "a snapshot was published");
        assert.deepEqual(await rows(store, name, pointer.sequence, work), ["a"]);
      } finally {
        await replicator.close();
        db.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("gives a store added while the database is idle the current state before flush says done", async () => {
    const work = await makeTempDir("reg-new-store");
    try {
      const path = join(work, "app.db");
      const db = await makeDb(path);
      await db.execute("INSERT INTO t(v) VALUES ('a')");
      const a = new LocalStore(join(work, "A"));
      const c = new LocalStore(join(work, "C"));
      const options = { hostname: "h", spoolDir: join(work, "spool"), ...FAST };
      let replicator = await Replicator.start(path, { ...options, stores: [a] });
      await replicator.close();
      replicator = await Replicator.start(path, { ...options, stores: [a, c] });
      try {
        const flushed = await replicator.flush();
        assert.equal(flushed.pending, 0);
        const pointer = await pointerOf(c, replicator.name);
        assert.ok(pointer, "the new store has a snapshot");
        assert.deepEqual(await rows(c, replicator.name, pointer.sequence, work), ["a"]);
      } finally {
        await replicator.close();
        db.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("rejects a flush whose capture failed, rather than report everything published", async () => {
    const work = await makeTempDir("reg-capture-failed");
    try {
      const path = join(work, "app.db");
      const db = await makeDb(path, "delete");
      await db.execute("INSERT INTO t(v) VALUES ('a')");
      const store = new LocalStore(join(work, "store"));
      const replicator = await Replicator.start(path, {
        stores: [store],
        hostname: "h",
        spoolDir: join(work, "spool"),
        ...FAST,
        pollIntervalMs: 60_000,
        busyTimeoutMs: 100,
      });
      const holder = createClient({ url: `file:${path}` });
      try {
        await replicator.flush();
        await db.execute("INSERT INTO t(v) VALUES ('b')");
        await holder.execute("PRAGMA busy_timeout = 0");
        await holder.execute("PRAGMA locking_mode = EXCLUSIVE");
        await holder.execute("BEGIN EXCLUSIVE");
        await assert.rejects(replicator.flush({ timeoutMs: 2000 }), (error: unknown) => {
          assert.ok(error instanceof TesseraError);
          assert.equal(error.code, "SOURCE_UNREADABLE");
          assert.match(error.message, /Cannot flush .*capturing .*app\.db failed/);
          return true;
        });
        // The transaction has ended by now (libsql's execute does not keep it open); the exclusive locking
        // mode keeps the lock until the mode is reset and the file is next read.
        await holder.execute("ROLLBACK").catch(() => {});
        await holder.execute("PRAGMA locking_mode = NORMAL");
        await holder.execute("SELECT count(*) FROM t");
        assert.equal((await replicator.flush()).pending, 0);
        const pointer = await pointerOf(store, replicator.name);
        assert.deepEqual(await rows(store, replicator.name, pointer?.sequence ?? 0, work), ["a", "b"]);
      } finally {
        holder.close();
        await replicator.close();
        db.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("holds no more descriptors of the source after 30 captures than before", async () => {
    const work = await makeTempDir("reg-fds");
    try {
      const path = join(work, "app.db");
      const db = await makeDb(path);
      const store = new LocalStore(join(work, "store"));
      const replicator = await Replicator.start(path, {
        stores: [store],
        hostname: "h",
        spoolDir: join(work, "spool"),
        ...FAST,
        pollIntervalMs: 60_000,
      });
      // Descriptors this process holds on the database's files (Linux).
      const open = () =>
        readdirSync("/proc/self/fd").filter((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`).startsWith(path);
          } catch {
            return false;
          }
        }).length;
      try {
        await replicator.flush();
        const before = open();
        for (let i = 0; i < 30; i++) {
          await db.execute({ sql: "INSERT INTO t(v) VALUES (?)", args: [`r${i}`] });
          await replicator.flush();
        }
        assert.ok(replicator.status().captures >= 30);
        assert.ok(open() <= before, `descriptors on the database grew from ${before} to ${open()}`);
      } finally {
        await replicator.close();
        db.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("close() stops a capture waiting behind a writer's lock rather than wait out the busy timeout", async () => {
    const work = await makeTempDir("reg-close-busy");
    try {
      const path = join(work, "app.db");
      const db = await makeDb(path, "delete");
      await db.execute("INSERT INTO t(v) VALUES ('a')");
      db.close();
      const replicator = await Replicator.start(path, {
        stores: [new LocalStore(join(work, "store"))],
        hostname: "h",
        spoolDir: join(work, "spool"),
        ...FAST,
        pollIntervalMs: 60_000,
        busyTimeoutMs: 60_000,
      });
      await replicator.flush();
      // Another process holds the write lock until the test says so (a line on its stdin).
      const writer = spawn("python3", [
        "-c",
        `import sqlite3, sys
c = sqlite3.connect(${JSON.stringify(path)}, isolation_level=None)
c.execute("BEGIN EXCLUSIVE"); c.execute("INSERT INTO t(v) VALUES ('b')")
print("held", flush=True); sys.stdin.readline(); c.execute("COMMIT"); c.close()`,
      ]);
      try {
        await new Promise<void>((resolve) => writer.stdout.once("data", () => resolve()));
        const capture = replicator.captureNow().then(() => undefined, (error: unknown) => error);
        await new Promise((resolve) => setTimeout(resolve, 300));
        await replicator.close({ timeoutMs: 500 });
        // Had close waited for the capture, the capture would have waited for the lock, which is only
        // released below: it would fail with SQLITE_BUSY after the minute's busy timeout instead.
        const error = await capture;
        assert.ok(error instanceof TesseraError, String(error));
        assert.match(error.message, /stopped/);
      } finally {
        writer.stdin.end("go\n");
        await new Promise((resolve) => writer.on("close", resolve));
      }
    } finally {
      await removeDir(work);
    }
  });
});
