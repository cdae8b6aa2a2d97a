/**
 * Lazy replicas of a 1 GiB database (real pages, written by the sqlite3 CLI) in s3rver, read through the
 * fault proxy, whose log counts every request a replica makes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LibsqlError } from "@libsql/core/api";
import { openReplica } from "../../src/config/replica.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { BATCH_BYTES, Offloader } from "../../src/replica/offload.ts";
import type { S3Store } from "../../src/store/s3.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { type FaultProxy, type ProxyLogEntry, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { s3StoreOn, type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { damageStoredChunk, storedChunks } from "../_helpers/stored.ts";
import { sqliteCli } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const ROWS = 1_050_000;
const MiB = 1024 * 1024;

/** A query every row's content takes part in. */
const SCAN =
  "SELECT count(*), sum(id), sum((id % 997) * unicode(substr(hex(v), 1 + id % 1700, 1))), max(k) FROM t";

const kinds = (log: ProxyLogEntry[], bucket: string, prefix: string) => {
  const at = `/${bucket}/${prefix}`;
  const gets = log.filter((e) => e.method === "GET" && e.path.startsWith(at));
  const of = (part: string) => gets.filter((e) => e.path.slice(at.length).startsWith(part)).length;
  return {
    pointer: gets.filter((e) => e.path.includes("/pointer")).length,
    manifests: gets.filter((e) => e.path.includes("/manifests/")).length,
    chunkObjects: of("chunks/"),
    packs: of("packs/"),
    all: gets.length,
  };
};

describe("lazy replicas of a 1 GiB database in s3rver, through the fault proxy", () => {
  let server: S3TestServer;
  let proxy: FaultProxy;
  let dir: string;
  let source: string;
  const prefix = "lazy/";
  let direct: S3Store;
  let viaProxy: S3Store;
  const opened: Replica[] = [];

  const storeAt = (endpoint: string) => s3StoreOn(server, { endpoint, prefix });
  const sync = () =>
    syncDatabase(source, { stores: [direct], hostname: "h", name: "big", spoolDir: join(dir, "spool") });
  const open = async (options: Parameters<typeof openReplica>[1] = {}) => {
    const replica = await openReplica("big", {
      store: viaProxy,
      load: "lazy",
      pollIntervalMs: 0,
      ...options,
    });
    opened.push(replica);
    return replica;
  };

  before(async () => {
    server = await startS3Server();
    proxy = await startFaultProxy(server.endpoint);
    dir = await makeTempDir("lazy-replica");
    source = join(dir, "big.db");
    // About 1 GiB of 4 KiB pages: four 900-byte random rows a page, and an index on a text key.
    await sqliteCli(
      source,
      `PRAGMA page_size = 4096;
       CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL);
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
       INSERT INTO t SELECT i, printf('key-%08d', (i * 7919) % 1050011), randomblob(900) FROM n;
       CREATE INDEX t_k ON t (k);`,
    );
    direct = storeAt(server.endpoint);
    viaProxy = storeAt(proxy.endpoint);
    await sync();
  });
  after(async () => {
    for (const replica of opened) replica.close();
    await proxy?.stop();
    await server?.stop();
    await removeDir(dir);
  });

  it("opens reading only the pointer, the manifest and its index; a point query fetches a few ranges", async () => {
    const size = Number(await sqliteCli(source, "PRAGMA page_count")) * 4096;
    assert.ok(size >= 1024 * MiB, `the database is ${size} bytes`);
    await proxy.resetLog();
    const replica = await open();
    const atOpen = kinds(await proxy.log(), server.bucket, prefix);
    // The chunks holding the two b-trees' root pages, fetched together: one range at most for each.
    assert.ok(atOpen.packs <= 2, `${atOpen.packs} pack GETs to open`);
    assert.equal(atOpen.pointer, 1);
    assert.equal(atOpen.manifests, 1);
    const { manifest } = await loadLatest(direct, "big");
    assert.equal(manifest.chunks.kind, "indexed");
    const indexCount = manifest.chunks.kind === "indexed" ? manifest.chunks.indexIds.length : 0;
    assert.equal(atOpen.chunkObjects, indexCount, "the index chunks, each once");
    assert.equal(atOpen.all, 2 + indexCount + atOpen.packs);

    // Through the index on k, then the table: two b-trees of three levels.
    const key = "key-00012345";
    const expected = await sqliteCli(source, `SELECT id, hex(v) FROM t WHERE k = '${key}'`);
    await proxy.resetLog();
    const { rows } = await replica.execute({ sql: "SELECT id, hex(v) FROM t WHERE k = ?", args: [key] });
    assert.equal(`${rows[0]![0]}|${rows[0]![1]}`, expected);
    const query = kinds(await proxy.log(), server.bucket, prefix);
    assert.ok(
      query.packs >= 1 && atOpen.packs + query.packs <= 8,
      `${atOpen.packs} + ${query.packs} pack GETs to open and run a point query (at most 8)`,
    );
    assert.equal(query.all, query.packs, "nothing but ranges of packs");
    const memory = replica.status().memory;
    assert.equal(memory.lazy, true);
    assert.ok(memory.chunkBytes <= 8 * 65536, `${memory.chunkBytes} bytes held after one point query`);

    // Warm: the same query reads nothing.
    await proxy.resetLog();
    await replica.execute({ sql: "SELECT id, hex(v) FROM t WHERE k = ?", args: [key] });
    assert.equal((await proxy.log()).length, 0);
  });

  it("serves a query from memory while another waits for its chunks", async () => {
    const replica = await open();
    await replica.execute("SELECT v FROM t WHERE id = 10");
    // Every pack read now takes 400 ms.
    await proxy.setRules([{ method: "GET", path: "/packs/", fault: "delay", delayMs: 400 }]);
    try {
      const order: string[] = [];
      const cold = replica.execute("SELECT hex(v) FROM t WHERE id = 900000").then((r) => {
        order.push("cold");
        return r;
      });
      // Let the cold query reach the network before the warm one is asked.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const warm = await replica.execute("SELECT length(v) FROM t WHERE id = 10");
      order.push("warm");
      assert.equal(warm.rows[0]![0], 900);
      const coldResult = await cold;
      assert.deepEqual(order, ["warm", "cold"], "the warm query did not wait for the cold one");
      assert.equal(coldResult.rows[0]![0], await sqliteCli(source, "SELECT hex(v) FROM t WHERE id = 900000"));
    } finally {
      await proxy.clear();
    }
  });

  it("scans the whole table under a memory cap far below its size, with the file's answer", async () => {
    const cap = 32 * MiB;
    // Straight from s3rver: the proxy would only slow a GiB down.
    const replica = await openReplica("big", {
      store: direct,
      load: "lazy",
      pollIntervalMs: 0,
      memoryCacheBytes: cap,
    });
    opened.push(replica);
    const expected = (await sqliteCli(source, SCAN)).split("|");
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const scan = replica.execute(SCAN);
    // Other queries are answered while the scan runs.
    const point = await replica.execute("SELECT k FROM t WHERE id = 77");
    assert.equal(point.rows[0]![0], await sqliteCli(source, "SELECT k FROM t WHERE id = 77"));
    const { rows } = await scan;
    clearInterval(timer);
    assert.deepEqual(Array.from(rows[0]!, String), expected);
    const memory = replica.status().memory;
    const bound = cap + (Offloader.available() ? BATCH_BYTES : 0);
    assert.ok(memory.peakChunkBytes! <= bound, `peak ${memory.peakChunkBytes} bytes held, cap ${cap}`);
    assert.ok(
      memory.chunksLoaded! >= 16_000,
      `${memory.chunksLoaded} chunks fetched: every one, evicted behind`,
    );
    if (Offloader.available()) {
      assert.equal(memory.offloaded, 1, "the scan ran in the worker");
      assert.ok(ticks > 10, `the event loop turned ${ticks} times during the scan`);
    }
  });

  it("a damaged chunk fails only the queries that need it, and the replica keeps serving", async () => {
    const { manifest } = await loadLatest(direct, "big");
    const chunks = await storedChunks(direct, manifest);
    // Chunk 100 holds pages 1601-1616: table rows around id 6,400.
    const middle = chunks.find((c) => c.index === 100)!;
    const original = await direct.get(middle.key);
    assert.equal(original.status, "ok");
    await damageStoredChunk(direct, middle);
    try {
      const replica = await open();
      const far = "SELECT k FROM t WHERE id = 1000000";
      const first = await replica.execute(far);
      assert.equal(first.rows[0]![0], await sqliteCli(source, far));
      await assert.rejects(
        replica.execute("SELECT sum(length(v)) FROM t WHERE id <= 20000"),
        (error: unknown) => {
          assert.ok(error instanceof LibsqlError, String(error));
          assert.ok(["CHECKSUM_MISMATCH", "CORRUPT_CHUNK"].includes(error.code), error.code);
          assert.match(error.message, /chunk/);
          return true;
        },
      );
      const near = "SELECT k FROM t WHERE id = 2";
      assert.equal((await replica.execute(near)).rows[0]![0], await sqliteCli(source, near));
      assert.equal((await replica.execute(far)).rows[0]![0], await sqliteCli(source, far));
    } finally {
      if (original.status === "ok") await direct.put(middle.key, original.body);
    }
  });

  it("refreshes mid-workload fetching only changed chunks it held, each statement on one snapshot", async () => {
    const replica = await open();
    const id = 1_049_000;
    const before = await replica.execute(`SELECT hex(v) FROM t WHERE id = ${id}`);
    await sqliteCli(source, `UPDATE t SET v = zeroblob(900) WHERE id = ${id}`);
    const sequence = replica.sequence;
    await sync();
    // Queries keep running while the replica moves to the new snapshot.
    let stop = false;
    const results: string[] = [];
    const workload = (async () => {
      while (!stop) {
        const { rows } = await replica.execute(`SELECT hex(v) FROM t WHERE id = ${id}`);
        results.push(String(rows[0]![0]));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    const loadedBefore = replica.status().memory.chunksLoaded!;
    await proxy.resetLog();
    await replica.refresh(1);
    const refreshLog = kinds(await proxy.log(), server.bucket, prefix);
    assert.equal(replica.sequence, sequence + 1);
    // The changed row's chunk was held, so it is fetched ahead; nothing else is.
    assert.ok(refreshLog.packs <= 2, `${refreshLog.packs} pack GETs to refresh`);
    assert.ok(replica.status().memory.chunksLoaded! - loadedBefore <= 2);
    await new Promise((resolve) => setTimeout(resolve, 30));
    stop = true;
    await workload;
    const zero = "00".repeat(900);
    assert.ok(
      results.every((r) => r === before.rows[0]![0] || r === zero),
      "each read saw one snapshot whole",
    );
    assert.equal(results.at(-1), zero, "the newest snapshot is served after the refresh");
  });
});
