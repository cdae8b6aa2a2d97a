/**
 * The replicator against a real S3 server (s3rver) behind the fault-injecting proxy, while a real writer
 * process commits: transient 500/503 answers and connection resets, then a multi-second outage in which every
 * request fails. Nothing it captured may be lost: once the faults stop and a flush returns with nothing
 * pending, every captured image is a manifest in the store, in order, and each restores to a committed state.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodePointer } from "../../src/manifest/codec.ts";
import { pointerKey } from "../../src/manifest/keys.ts";
import { listHistory } from "../../src/manifest/catalog.ts";
import { Replicator, type ReplicatorEvent } from "../../src/replicate/replicator.ts";
import { S3Store } from "../../src/store/s3.ts";
import { type FaultProxy, type FaultRule, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { isCommittedState } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { startWriter } from "../_helpers/writer.ts";
import { restoredState, waitUntil } from "./_outage.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// One transient fault for the next request: the S3 client's own retries usually absorb it.
const TRANSIENT: FaultRule[][] = [
  [{ fault: "status", status: 500, code: "InternalError", times: 1 }],
  [{ fault: "status", status: 503, code: "SlowDown", times: 1 }],
  [{ fault: "reset", times: 1 }],
  [{ method: "PUT", fault: "status", status: 503, times: 2 }],
  [{ method: "PUT", fault: "reset", times: 2 }],
];

describe("Replicator through S3 faults (s3rver behind a fault proxy)", () => {
  let server: S3TestServer;
  let proxy: FaultProxy;
  let work: string;

  before(async () => {
    server = await startS3Server();
    proxy = await startFaultProxy(server.endpoint);
    work = await makeTempDir("repl-fault");
  });
  after(async () => {
    await proxy?.stop();
    await server?.stop();
    await removeDir(work);
  });

  const storeAt = (endpoint: string) =>
    new S3Store({
      bucket: server.bucket,
      endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      // Few, quick client-side retries, so that an outage reaches the replicator's own backoff.
      maxAttempts: 3,
      baseDelayMs: 20,
      maxDelayMs: 100,
      timeoutMs: 3_000,
    }, { prefix: "fault/" });

  it("publishes every captured image in order through errors, resets and a 4 s outage", async () => {
    const db = join(work, "app.db");
    const store = storeAt(proxy.endpoint);
    // Checks read s3rver directly, past the proxy.
    const direct = storeAt(server.endpoint);
    const events: ReplicatorEvent[] = [];
    const writer = await startWriter(db, { mode: "wal", pauseMs: 15, payload: 3000 });
    let stopped = false;
    const replicator = await Replicator.start(db, {
      stores: [store],
      hostname: "fault-host",
      spoolDir: join(work, "spool"),
      debounceMs: 20,
      maxDelayMs: 150,
      pollIntervalMs: 50,
      retryBaseMs: 50,
      retryMaxMs: 400,
      onEvent: (e) => events.push(e),
    });
    try {
      await writer.waitFor(20);
      await proxy.resetLog();

      // Transient faults, one every 150 ms for 3 s, while the writer commits.
      for (let i = 0; i < 20; i++) {
        await proxy.setRules(TRANSIENT[i % TRANSIENT.length] as FaultRule[]);
        await sleep(150);
      }
      await proxy.clear();
      const transient = (await proxy.log()).filter((e) => e.fault !== null).length;
      assert.ok(transient > 0, "transient faults were injected");

      // The outage: every request answered 503 for 2 s, then every connection reset for 2 s.
      const capturedBefore = replicator.status().captures;
      const failuresBefore = replicator.status().targets[0]?.failures ?? 0;
      let maxFailures = failuresBefore;
      let maxLagMs = 0;
      let maxPending = 0;
      const watch = async (ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          const s = replicator.status();
          maxFailures = Math.max(maxFailures, s.targets[0]?.failures ?? 0);
          maxLagMs = Math.max(maxLagMs, s.lagMs);
          maxPending = Math.max(maxPending, s.pending);
          await sleep(50);
        }
      };
      await proxy.setRules([{ fault: "status", status: 503, code: "ServiceUnavailable" }]);
      await watch(2_000);
      await proxy.setRules([{ fault: "reset" }]);
      await watch(2_000);
      const during = replicator.status();
      await proxy.clear();

      assert.ok(maxFailures > failuresBefore, `publishes failed during the outage (${maxFailures})`);
      assert.ok(maxLagMs > 0, "status reported a lag during the outage");
      assert.ok(maxPending >= 2, `images piled up in the spool during the outage (${maxPending})`);
      assert.ok(during.captures > capturedBefore, "capturing went on during the outage");
      assert.match(during.targets[0]?.lastError ?? "", /\S/);
      assert.ok(events.some((e) => e.type === "publish_failed"));

      // The store is back; the writer commits a little longer, then stops.
      await sleep(500);
      const last = await writer.stop();
      stopped = true;
      const flushed = await replicator.flush({ timeoutMs: 30_000 });
      assert.equal(flushed.pending, 0, "everything captured was published");
      const status = replicator.status();
      assert.equal(status.pending, 0);
      assert.equal(status.lagMs, 0);
      assert.equal(status.targets[0]?.consecutiveFailures, 0);

      const captured = events.flatMap((e) => e.type === "captured" ? [e.sequence] : []);
      const coalesced = new Set(events.flatMap((e) => e.type === "coalesced" ? e.dropped : []));
      const expected = captured.filter((s) => !coalesced.has(s));
      assert.deepEqual(captured, [...captured].sort((a, b) => a - b), "captures numbered in order");
      assert.ok(expected.length >= 10, `many captures (${expected.length})`);
      const history = (await listHistory(direct, replicator.name)).map((e) => e.sequence);
      assert.deepEqual(history, expected, "every captured image is a manifest in the store, in order");

      const pointer = await direct.get(pointerKey(replicator.name));
      assert.equal(pointer.status, "ok");
      const newest = pointer.status === "ok" ? (await decodePointer(pointer.body)).sequence : 0;
      assert.equal(newest, expected.at(-1), "the pointer names the newest capture");

      let previous = 0;
      for (const sequence of history) {
        const state = await restoredState(direct, replicator.name, sequence, work);
        assert.equal(state.integrity, "ok", `snapshot ${sequence} passes integrity_check`);
        assert.ok(
          isCommittedState(state),
          `snapshot ${sequence} is a committed state (${JSON.stringify(state)})`,
        );
        assert.ok(
          state.last >= previous,
          `snapshot ${sequence} does not go back (${state.last} < ${previous})`,
        );
        previous = state.last;
      }
      assert.equal(previous, last, "the newest snapshot holds the writer's last commit");
      console.log(
        `fault_test: ${transient} transient faults, ${maxFailures} failed publishes, ${maxPending} pending at ` +
          `most, ${expected.length} snapshots published, last commit ${last}`,
      );
    } finally {
      await proxy.clear().catch(() => {});
      if (!stopped) await writer.stop().catch(() => 0);
      await replicator.close({ timeoutMs: 5_000 });
    }
  });

  it("waits for the store while it is down from the start, then publishes what it captured", async () => {
    const db = join(work, "cold.db");
    const store = storeAt(proxy.endpoint);
    const direct = storeAt(server.endpoint);
    const w = await startWriter(db, { mode: "delete", count: 5, payload: 2000 });
    await w.waitFor(5);
    await w.stop();
    await proxy.setRules([{ fault: "reset" }]);
    const replicator = await Replicator.start(db, {
      stores: [store],
      hostname: "fault-host",
      spoolDir: join(work, "spool-cold"),
      debounceMs: 20,
      pollIntervalMs: 50,
      retryBaseMs: 50,
      retryMaxMs: 300,
    });
    try {
      await waitUntil(() => (replicator.status().targets[0]?.failures ?? 0) >= 2, 20_000, "failures");
      const w2 = await startWriter(db, { mode: "delete", count: 3, payload: 2000 });
      await w2.waitFor(8);
      const last = await w2.stop();
      await waitUntil(() => replicator.status().lastCapture !== null, 20_000, "a capture");
      const during = replicator.status();
      assert.ok(during.pending >= 1);
      assert.ok(during.lagMs > 0);
      assert.equal(during.lastSync, null, "nothing published yet");
      await proxy.clear();
      assert.equal((await replicator.flush({ timeoutMs: 30_000 })).pending, 0);
      const history = await listHistory(direct, replicator.name);
      assert.ok(history.length >= 1);
      const newest = history.at(-1)?.sequence ?? 0;
      const state = await restoredState(direct, replicator.name, newest, work);
      assert.equal(state.integrity, "ok");
      assert.ok(isCommittedState(state));
      assert.equal(state.last, last);
    } finally {
      await proxy.clear().catch(() => {});
      await replicator.close({ timeoutMs: 5_000 });
    }
  });
});
