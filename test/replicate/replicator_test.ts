/**
 * The replicator against real SQLite files, real writer processes and real directory stores; outages are
 * injected in front of the store.
 */

import assert from "node:assert/strict";
import { readdir, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/errors.ts";
import { leaseKey } from "../../src/manifest/keys.ts";
import { listHistory } from "../../src/manifest/catalog.ts";
import { Replicator, type ReplicatorEvent } from "../../src/replicate/replicator.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { isCommittedState } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { startWriter } from "../_helpers/writer.ts";
import { OutageStore, pointerSequence, restoredState, waitUntil } from "./_outage.ts";

describe("Replicator", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("replicator");
  });
  after(async () => {
    await removeDir(dir);
  });

  for (const mode of ["wal", "delete"] as const) {
    it(`publishes every commit of a live ${mode} writer, and the last state once flushed`, async () => {
      const work = await makeTempDir(`repl-${mode}`);
      try {
        const db = join(work, "app.db");
        const store = new LocalStore(join(work, "store"));
        const writer = await startWriter(db, { mode, pauseMs: 5, payload: 3000 });
        const events: ReplicatorEvent[] = [];
        const replicator = await Replicator.start(db, {
          stores: [store],
          hostname: "host-a",
          spoolDir: join(work, "spool"),
          debounceMs: 20,
          maxDelayMs: 100,
          pollIntervalMs: 50,
          onEvent: (e) => events.push(e),
        });
        try {
          await writer.waitFor(60);
          // Snapshots are published while the writer goes on: wait for a second one rather than assume 60
          // commits take long enough (on a loaded machine they may all land before the first publish ends).
          await waitUntil(
            async () => (await pointerSequence(store, replicator.name)) >= 2,
            20_000,
            "a second snapshot while the writer runs",
          );
          const last = await writer.stop();
          const flushed = await replicator.flush({ timeoutMs: 20_000 });
          assert.equal(flushed.pending, 0);
          const seq = await pointerSequence(store, replicator.name);
          assert.ok(seq >= 2, `several snapshots published while the writer ran (pointer at ${seq})`);
          const state = await restoredState(store, replicator.name, seq, work);
          assert.equal(state.integrity, "ok");
          assert.equal(state.last, last, "the newest snapshot holds the writer's last commit");
          assert.ok(isCommittedState(state));
          // Every snapshot in the history is a committed state of the writer, in order.
          const history = await listHistory(store, replicator.name);
          let previous = -1;
          for (const entry of history) {
            const s = await restoredState(store, replicator.name, entry.sequence, work);
            assert.ok(isCommittedState(s), `snapshot ${entry.sequence} is a committed state`);
            assert.ok(s.last >= previous, "history never goes back");
            previous = s.last;
          }
          const status = replicator.status();
          assert.equal(status.pending, 0);
          assert.equal(status.lastSync?.sequence, seq);
          assert.equal(status.targets[0]?.sequence, seq);
          assert.ok(events.some((e) => e.type === "published"));
        } finally {
          await replicator.close();
        }
        // The spool is empty once everything is published.
        const spooled = await readdir(join(work, "spool", "replicate", replicator.name, "chunks"));
        assert.deepEqual(spooled, []);
      } finally {
        await removeDir(work);
      }
    });
  }

  it("keeps what it captured through an outage and publishes it in order when the store returns", async () => {
    const work = await makeTempDir("repl-outage");
    try {
      const db = join(work, "app.db");
      const store = new OutageStore(new LocalStore(join(work, "store")));
      const writer = await startWriter(db, { mode: "wal", count: 5, payload: 2000 });
      await writer.waitFor(5);
      await writer.stop();
      const replicator = await Replicator.start(db, {
        stores: [store],
        hostname: "host-a",
        spoolDir: join(work, "spool"),
        debounceMs: 10,
        maxDelayMs: 50,
        pollIntervalMs: 30,
        retryBaseMs: 20,
        retryMaxMs: 100,
      });
      try {
        await replicator.flush();
        const first = await pointerSequence(store, replicator.name);
        store.down = true;
        // Three separate commits while the store is down: each is captured into the spool.
        for (let i = 0; i < 3; i++) {
          const w = await startWriter(db, { mode: "wal", count: 1, payload: 2000 });
          await w.waitFor(6 + i);
          await w.stop();
          await waitUntil(
            () => replicator.status().lastCapture?.sequence === first + i + 1,
            20_000,
            "a capture",
          );
        }
        const during = replicator.status();
        assert.equal(during.pending, 3);
        assert.ok(during.pendingBytes > 0);
        assert.ok((during.targets[0]?.consecutiveFailures ?? 0) >= 1);
        assert.match(during.targets[0]?.lastError ?? "", /outage/);
        assert.ok(during.lagMs > 0);
        store.down = false;
        const flushed = await replicator.flush({ timeoutMs: 20_000 });
        assert.equal(flushed.pending, 0);
        const history = (await listHistory(store, replicator.name)).map((e) => e.sequence);
        assert.deepEqual(history, [first, first + 1, first + 2, first + 3], "every captured image published");
        for (const [i, sequence] of history.entries()) {
          const state = await restoredState(store, replicator.name, sequence, work);
          assert.equal(state.last, 5 + i);
          assert.equal(state.integrity, "ok");
        }
      } finally {
        await replicator.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("publishes after a restart what a stopped replicator left in its spool", async () => {
    const work = await makeTempDir("repl-restart");
    try {
      const db = join(work, "app.db");
      const inner = new LocalStore(join(work, "store"));
      const store = new OutageStore(inner);
      const w = await startWriter(db, { mode: "delete", count: 3, payload: 2000 });
      await w.waitFor(3);
      await w.stop();
      const options = {
        hostname: "host-a",
        spoolDir: join(work, "spool"),
        debounceMs: 10,
        pollIntervalMs: 30,
      };
      store.down = true;
      const first = await Replicator.start(db, { ...options, stores: [store], retryBaseMs: 1000 });
      await waitUntil(() => first.status().pending === 1, 20_000, "the first capture");
      // Stopped without a flush while the store is down: the image stays in the spool.
      const left = await first.close({ flush: false });
      assert.equal(left.pending, 1);
      assert.equal(await pointerSequence(inner, first.name), 0);
      const second = await Replicator.start(db, { ...options, stores: [inner] });
      try {
        const flushed = await second.flush();
        assert.equal(flushed.pending, 0);
        assert.equal(await pointerSequence(inner, second.name), 1);
        const state = await restoredState(inner, second.name, 1, work);
        assert.equal(state.last, 3);
      } finally {
        await second.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("coalesces older unpublished images when the spool reaches its bound, and reports it", async () => {
    const work = await makeTempDir("repl-coalesce");
    try {
      const db = join(work, "app.db");
      const store = new OutageStore(new LocalStore(join(work, "store")));
      const w = await startWriter(db, { mode: "wal", count: 1, payload: 2000 });
      await w.waitFor(1);
      await w.stop();
      store.down = true;
      const events: ReplicatorEvent[] = [];
      const replicator = await Replicator.start(db, {
        stores: [store],
        hostname: "host-a",
        spoolDir: join(work, "spool"),
        debounceMs: 10,
        pollIntervalMs: 30,
        retryBaseMs: 20,
        retryMaxMs: 50,
        maxSpoolBytes: 1,
        onEvent: (e) => events.push(e),
      });
      try {
        for (let i = 0; i < 4; i++) {
          const writer = await startWriter(db, { mode: "wal", count: 1, payload: 70_000 });
          await writer.waitFor(2 + i);
          await writer.stop();
          await replicator.flush({ timeoutMs: 50 });
        }
        // The last commit is captured before "newest" is read (a 50 ms flush may end before its capture).
        await replicator.captureNow();
        const status = replicator.status();
        assert.ok(
          status.pending <= 2,
          `the spool keeps at most the newest image and one in flight (${status.pending})`,
        );
        assert.ok(status.coalesced >= 2, `coalesced ${status.coalesced}`);
        assert.ok(events.some((e) => e.type === "coalesced"));
        const newest = status.lastCapture?.sequence ?? 0;
        store.down = false;
        assert.equal((await replicator.flush()).pending, 0);
        const seq = await pointerSequence(store, replicator.name);
        assert.equal(seq, newest, "the pointer names the newest image");
        assert.equal((await restoredState(store, replicator.name, seq, work)).last, 5);
      } finally {
        await replicator.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("fans out to every store; a failing one does not hold the others back and catches up", async () => {
    const work = await makeTempDir("repl-fanout");
    try {
      const db = join(work, "app.db");
      const good = new LocalStore(join(work, "good"));
      const flaky = new OutageStore(new LocalStore(join(work, "flaky")));
      const w = await startWriter(db, { mode: "wal", count: 2, payload: 2000 });
      await w.waitFor(2);
      await w.stop();
      flaky.down = true;
      const replicator = await Replicator.start(db, {
        stores: [good, flaky],
        hostname: "host-a",
        spoolDir: join(work, "spool"),
        debounceMs: 10,
        pollIntervalMs: 30,
        retryBaseMs: 20,
        retryMaxMs: 50,
      });
      try {
        await waitUntil(
          async () => (await pointerSequence(good, replicator.name)) === 1,
          20_000,
          "good store",
        );
        const w2 = await startWriter(db, { mode: "wal", count: 1, payload: 2000 });
        await w2.waitFor(3);
        await w2.stop();
        // The good store follows: a snapshot holding commit 3 (how many captures the second writer's
        // start-up and commit make depends on timing, and on a loaded machine the capture can come late).
        let newest = 0;
        await waitUntil(
          async () => {
            newest = await pointerSequence(good, replicator.name);
            return newest >= 2 && (await restoredState(good, replicator.name, newest, work)).last === 3;
          },
          20_000,
          "the good store to have a snapshot holding commit 3",
        );
        await waitUntil(
          () => {
            const status = replicator.status();
            return status.targets[0]?.sequence === status.lastCapture?.sequence;
          },
          20_000,
          "the good store to have the newest capture",
        );
        newest = await pointerSequence(good, replicator.name);
        assert.equal((await restoredState(good, replicator.name, newest, work)).last, 3);
        const goodHistory = (await listHistory(good, replicator.name)).map((e) => e.sequence);
        assert.equal(
          replicator.status().targets[1]?.behind,
          goodHistory.length,
          "the down store is behind by all",
        );
        flaky.down = false;
        assert.equal((await replicator.flush()).pending, 0);
        // Every snapshot reached the store that was down, in order.
        assert.deepEqual((await listHistory(flaky, replicator.name)).map((e) => e.sequence), goodHistory);
        assert.equal((await restoredState(flaky, replicator.name, newest, work)).last, 3);
      } finally {
        await replicator.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("refuses to start while another host's replicator holds the lease", async () => {
    const work = await makeTempDir("repl-lease");
    try {
      const db = join(work, "app.db");
      const store = new LocalStore(join(work, "store"));
      const w = await startWriter(db, { mode: "wal", count: 1 });
      await w.waitFor(1);
      await w.stop();
      const first = await Replicator.start(db, {
        stores: [store],
        hostname: "h",
        name: "app",
        spoolDir: join(work, "s1"),
      });
      try {
        await assert.rejects(
          Replicator.start(db, {
            stores: [store],
            hostname: "other",
            name: "app",
            spoolDir: join(work, "s2"),
          }),
          (error: unknown) => {
            assert.ok(error instanceof TesseraError);
            assert.equal(error.code, "LEASE_HELD");
            assert.match(error.message, /database "app".*holds its lease/);
            return true;
          },
        );
        // The same spool from a second process on this host is refused too.
        await assert.rejects(
          Replicator.start(db, { stores: [store], hostname: "h", name: "app", spoolDir: join(work, "s1") }),
          (error: unknown) => error instanceof TesseraError && error.code === "LEASE_HELD",
        );
      } finally {
        await first.close();
      }
      // Once it stopped, the lease is free.
      const second = await Replicator.start(db, {
        stores: [store],
        hostname: "other",
        name: "app",
        spoolDir: join(work, "s2"),
      });
      await second.close();
    } finally {
      await removeDir(work);
    }
  });

  it("stops with CONFLICT when another writer moves the pointer while it runs", async () => {
    const work = await makeTempDir("repl-conflict");
    try {
      const db = join(work, "app.db");
      const store = new LocalStore(join(work, "store"));
      const w = await startWriter(db, { mode: "wal", count: 1 });
      await w.waitFor(1);
      await w.stop();
      const events: ReplicatorEvent[] = [];
      const replicator = await Replicator.start(db, {
        stores: [store],
        hostname: "h",
        name: "app",
        spoolDir: join(work, "s1"),
        debounceMs: 10,
        pollIntervalMs: 30,
        onEvent: (e) => events.push(e),
      });
      try {
        await replicator.flush();
        // A one-off sync refuses while the replicator holds the lease, and publishes nothing.
        const sync = () =>
          syncDatabase(db, {
            stores: [store],
            hostname: "h",
            name: "app",
            spoolDir: join(work, "s2"),
            full: true,
          });
        await assert.rejects(sync(), (error: unknown) => {
          assert.ok(error instanceof TesseraError);
          assert.equal(error.code, "LEASE_HELD");
          assert.match(error.message, /Cannot sync database "app".*holds its lease.*tessera flush/);
          return true;
        });
        assert.equal(await pointerSequence(store, "app"), 1);
        // A writer that ignores the lease (one whose lease read raced, say) is caught by the pointer check.
        await store.delete(leaseKey("app"));
        await sync();
        const w2 = await startWriter(db, { mode: "wal", count: 1 });
        await w2.waitFor(2);
        await w2.stop();
        await waitUntil(() => replicator.error !== null, 20_000, "the conflict");
        assert.match(replicator.error ?? "", /pointer moved from sequence 1 to 2.*another writer/);
        assert.ok(events.some((e) => e.type === "fatal"));
        assert.equal(await pointerSequence(store, "app"), 2, "the other writer's pointer is left alone");
      } finally {
        await replicator.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("touches the newest snapshot's old chunks periodically when asked", async () => {
    const work = await makeTempDir("repl-touch");
    try {
      const db = join(work, "app.db");
      const storeDir = join(work, "store");
      const store = new LocalStore(storeDir);
      const w = await startWriter(db, { mode: "wal", count: 30, payload: 3000 });
      await w.waitFor(30);
      await w.stop();
      await syncDatabase(db, { stores: [store], hostname: "h", name: "app", spoolDir: join(work, "s0") });
      // Every pack and chunk file is made two days old, as a bucket's lifecycle rule would see it.
      const chunkFiles: string[] = [];
      for (const kind of ["chunks", "packs"]) {
        for (const shard of await readdir(join(storeDir, kind)).catch(() => [])) {
          for (const file of await readdir(join(storeDir, kind, shard))) {
            chunkFiles.push(join(storeDir, kind, shard, file));
          }
        }
      }
      assert.ok(chunkFiles.some((file) => file.includes("/packs/")), "the data is in a pack");
      const old = new Date(Date.now() - 2 * 86_400_000);
      for (const file of chunkFiles) await utimes(file, old, old);
      const events: ReplicatorEvent[] = [];
      const replicator = await Replicator.start(db, {
        stores: [store],
        hostname: "h",
        name: "app",
        spoolDir: join(work, "s1"),
        touchIntervalMs: 50,
        touchOlderThanMs: 86_400_000,
        onEvent: (e) => events.push(e),
      });
      try {
        await waitUntil(() => events.some((e) => e.type === "touched"), 20_000, "a touch");
        const touched = events.find((e) => e.type === "touched");
        assert.ok(touched?.type === "touched" && touched.touched === chunkFiles.length);
        for (const file of chunkFiles) {
          assert.ok((await stat(file)).mtimeMs > Date.now() - 60_000, `${file} was written again`);
        }
      } finally {
        await replicator.close();
      }
    } finally {
      await removeDir(work);
    }
  });
});
