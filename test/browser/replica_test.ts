/**
 * A replica in a real browser: Debian's chromium, headless, loading the browser bundle
 * (`deno task build:browser`) from a loopback site that also serves the store and counts every request.
 * Databases are written by the sqlite3 CLI and published with `syncDatabase`, as `tessera sync` does.
 */

import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, ConsoleMessage, Page } from "playwright-core";
import { readPackContents } from "../../src/chunk/pack.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import type * as Web from "../../src/web.ts";
import { browserBundle, launchChromium, objectsEndpoint, type Site, startSite } from "../_helpers/browser.ts";
import { sqliteCli } from "../_helpers/run.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** What the test pages hold: the bundle's exports, and the replica a test opened. */
interface PageGlobals {
  tessera: typeof Web;
  replica?: Web.Replica;
}

// No favicon request: its 404 would be a console error, and a test asserts the page logs none.
const PAGE = `<!doctype html><meta charset="utf-8"><title>tessera test</title><link rel="icon" href="data:,">
<script type="module">import * as tessera from "/dist/tessera.js"; globalThis.tessera = tessera;</script>`;

const WORKER = `import { HttpStore, openReplica } from "/dist/tessera.js";
self.onmessage = async ({ data }) => {
  try {
    const replica = await openReplica(data.name, { store: new HttpStore(data.store), pollIntervalMs: 0 });
    const result = await replica.execute(data.sql);
    self.postMessage({ rows: result.rows.map((row) => result.columns.map((_, i) => row[i])) });
    replica.close();
  } catch (error) {
    self.postMessage({ error: String(error?.code ?? error?.message ?? error) });
  }
};`;

const ROWS = 20_000;
/** Bounds a wait only so that a broken poller fails its test instead of hanging the suite. */
const MAX_TRIES = 600;

/** Chunk and pack downloads among the site's requests. */
function chunkDownloads(site: Site): number {
  return site.requests.filter((r) => r.method === "GET" && /\/(packs|chunks)\//.test(r.path)).length;
}

async function openPage(context: BrowserContext, site: Site): Promise<Page> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${site.url}/`);
  await page.waitForFunction(() => "tessera" in globalThis, null, { timeout: 30_000 });
  assert.deepEqual(errors, []);
  return page;
}

/** Opens `name` from `storeUrl` in the page (kept as `globalThis.replica`); answers the error's code on failure. */
function openIn(page: Page, storeUrl: string, name: string, extra: Record<string, unknown> = {}) {
  return page.evaluate(async ({ storeUrl, name, extra }) => {
    const g = globalThis as unknown as PageGlobals;
    try {
      g.replica = await g.tessera.openReplica(name, {
        store: new g.tessera.HttpStore(storeUrl),
        pollIntervalMs: 100,
        ...extra,
      });
      return { sequence: g.replica.sequence, engine: g.replica.status().engine };
    } catch (error) {
      return { error: String((error as { code?: string }).code ?? error), message: String(error) };
    }
  }, { storeUrl, name, extra });
}

/** Waits until the page's OPFS cache stops growing (the replica writes it in the background); its chunk count. */
function settleOpfs(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const g = globalThis as unknown as PageGlobals;
    const cache = new g.tessera.OpfsChunkCache();
    let chunks = -1;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const now = (await cache.usage()).chunks;
      if (now === chunks) return now;
      chunks = now;
    }
  });
}

function queryIn(page: Page, sql: string): Promise<unknown[][]> {
  return page.evaluate(async (sql) => {
    const g = globalThis as unknown as PageGlobals;
    const result = await g.replica!.execute(sql);
    return result.rows.map((row) => result.columns.map((_, i) => row[i]));
  }, sql);
}

describe("a replica in chromium", () => {
  let dir: string;
  let db: string;
  let storeDir: string;
  let site: Site;
  let browser: Browser;
  let s3: S3TestServer;

  const sync = (stores: BlobStore[] = [new LocalStore(storeDir)], name = "app", file = db) =>
    syncDatabase(file, { stores, name, hostname: "browser-host", spoolDir: join(dir, "spool") });

  before(async () => {
    dir = await makeTempDir("browser-replica");
    db = join(dir, "app.db");
    storeDir = join(dir, "store");
    await sqliteCli(
      db,
      "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB); " +
        "CREATE INDEX t_v ON t(v); " +
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS}) ` +
        "INSERT INTO t SELECT i, printf('row %06d of the browser test', i), randomblob(8) FROM n;",
    );
    await sync();
    const [bundle, chromium, s3server] = await Promise.all([
      browserBundle(),
      launchChromium(),
      startS3Server({ cors: true }),
    ]);
    browser = chromium;
    s3 = s3server;
    // no-store: the downloads the OPFS tests count must not be served by chromium's HTTP cache instead.
    const objects = objectsEndpoint(new LocalStore(storeDir), ["app"], { noStore: true });
    site = await startSite({
      pages: { "/": PAGE },
      directories: { "/dist/": bundle },
      fetch: async (request) => {
        const path = new URL(request.url).pathname;
        if (path === "/worker.js") {
          return new Response(WORKER, { headers: { "content-type": "text/javascript" } });
        }
        return await objects(request);
      },
    });
  });

  after(async () => {
    await browser?.close();
    await site?.stop();
    await s3?.stop();
    await removeDir(dir);
  });

  it("opens a replica on a page and answers queries as the sqlite3 CLI does, zstd chunks included", async () => {
    // The store holds zstd-coded chunk objects (codec byte 1), which the page decodes without node:zlib.
    let zstd = 0;
    for (const shard of await readdir(join(storeDir, "packs"))) {
      for (const name of await readdir(join(storeDir, "packs", shard))) {
        const pack = new Uint8Array(await readFile(join(storeDir, "packs", shard, name)));
        const entries = await readPackContents(pack);
        zstd += entries.filter((e) => pack[e.offset + 5] === 1).length;
      }
    }
    assert.ok(zstd > 0, "some chunks are zstd-coded");

    const context = await browser.newContext();
    try {
      const page = await openPage(context, site);
      assert.equal(
        await page.evaluate(() => typeof (globalThis as { process?: unknown }).process),
        "undefined",
      );
      assert.deepEqual(await openIn(page, `${site.url}/v1/objects`, "app"), { sequence: 1, engine: "wasm" });
      const sql = "SELECT count(*), sum(length(v)), max(v), hex(b) FROM t WHERE id % 997 = 3";
      const expected = (await sqliteCli(db, `${sql};`)).trim().split("|");
      const rows = await queryIn(page, sql);
      assert.deepEqual(rows.map((row) => row.map(String)), [expected]);
      assert.deepEqual(await queryIn(page, "SELECT v FROM t WHERE v = 'row 012345 of the browser test'"), [[
        "row 012345 of the browser test",
      ]]);
    } finally {
      await context.close();
    }
  });

  it("refuses to write, and follows a new sync by the writer", async () => {
    const context = await browser.newContext();
    try {
      const page = await openPage(context, site);
      await openIn(page, `${site.url}/v1/objects`, "app");
      const refused = await page.evaluate(async () => {
        const g = globalThis as unknown as PageGlobals;
        return await g.replica!.execute("INSERT INTO t (id) VALUES (0)").then(
          () => "written",
          (error) => String(error.code),
        );
      });
      assert.equal(refused, "SQLITE_READONLY");
      const before = Number((await queryIn(page, "SELECT count(*) FROM t"))[0]![0]);
      await sqliteCli(db, "INSERT INTO t (v) VALUES ('written after the page opened');");
      await sync();
      // Each query may move to a newer snapshot (autoRefresh); the writer's row shows up within a few polls.
      let n = before;
      for (let tries = 0; n !== before + 1 && tries < MAX_TRIES; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        n = Number((await queryIn(page, "SELECT count(*) FROM t"))[0]![0]);
      }
      assert.equal(n, before + 1, "the page follows the new sync");
      assert.deepEqual(await queryIn(page, "SELECT v FROM t ORDER BY id DESC LIMIT 1"), [[
        "written after the page opened",
      ]]);
      const sequence = await page.evaluate(() => (globalThis as unknown as PageGlobals).replica!.sequence);
      assert.ok(sequence >= 2, `sequence ${sequence}`);
    } finally {
      await context.close();
    }
  });

  it("opens a replica in a Web Worker", async () => {
    const context = await browser.newContext();
    try {
      const page = await openPage(context, site);
      const answer = await page.evaluate(async (store) => {
        const worker = new Worker("/worker.js", { type: "module" });
        return await new Promise((resolve) => {
          worker.onmessage = ({ data }) => resolve(data);
          worker.onerror = (event) => resolve({ error: event.message });
          worker.postMessage({ store, name: "app", sql: "SELECT count(*), min(v) FROM t" });
        });
      }, `${site.url}/v1/objects`);
      const expected = (await sqliteCli(db, "SELECT count(*), min(v) FROM t;")).trim().split("|");
      assert.deepEqual((answer as { rows: unknown[][] }).rows.map((r) => r.map(String)), [expected]);
    } finally {
      await context.close();
    }
  });

  it("reads an S3 bucket: signed in headers, presigned (signed in the URL), and public over plain HTTP", async () => {
    const { S3Store } = await import("../../src/store/s3.ts");
    const s3store = new S3Store({
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    }, { prefix: "browser/" });
    await sync([s3store], "app");
    const context = await browser.newContext();
    try {
      const page = await openPage(context, site);
      const toS3: { url: string; authorization: string | undefined }[] = [];
      page.on("request", (request) => {
        if (request.url().startsWith(s3.endpoint)) {
          toS3.push({ url: request.url(), authorization: request.headers()["authorization"] });
        }
      });
      const countWith = (signing: "header" | "query") =>
        page.evaluate(async ({ s3, signing }) => {
          const g = globalThis as unknown as PageGlobals;
          const store = new g.tessera.S3Store({
            bucket: s3.bucket,
            endpoint: s3.endpoint,
            region: s3.region,
            credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
            signing,
          }, { prefix: "browser/" });
          const replica = await g.tessera.openReplica("app", { store, pollIntervalMs: 0, opfs: false });
          const n = (await replica.execute("SELECT count(*) FROM t")).rows[0]![0];
          replica.close();
          return Number(n);
        }, {
          s3: {
            bucket: s3.bucket,
            endpoint: s3.endpoint,
            region: s3.region,
            accessKeyId: s3.accessKeyId,
            secretAccessKey: s3.secretAccessKey,
          },
          signing,
        });
      const expected = Number(await sqliteCli(db, "SELECT count(*) FROM t;"));
      assert.equal(await countWith("header"), expected);
      assert.ok(toS3.length > 0 && toS3.every((r) => r.authorization?.startsWith("AWS4-HMAC-SHA256 ")));
      toS3.splice(0);
      assert.equal(await countWith("query"), expected);
      const fetched = toS3.filter((r) => !r.url.includes("X-Amz-Signature="));
      assert.ok(toS3.length > 0);
      assert.deepEqual(fetched, [], "every presigned request carries its signature in the URL");
      assert.ok(toS3.every((r) => r.authorization === undefined), "and no Authorization header");
      const opened = await openIn(page, `${s3.endpoint}/${s3.bucket}/browser`, "app");
      assert.equal(opened.engine, "wasm", JSON.stringify(opened));
      assert.deepEqual(await queryIn(page, "SELECT count(*) FROM t"), [[expected]]);
    } finally {
      await context.close();
    }
  });

  it("rejects a damaged chunk from the store with CHECKSUM_MISMATCH, naming the chunk and where it came from", async () => {
    const badDir = join(dir, "bad-store");
    const other = join(dir, "other.db");
    await sqliteCli(
      other,
      "CREATE TABLE t (v TEXT, b BLOB); " +
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) " +
        "INSERT INTO t SELECT printf('other %06d', i), randomblob(200) FROM n;",
    );
    await sync([new LocalStore(badDir)], "other", other);
    // Flip one byte near the end of a stored chunk object (a pack's last chunk, or a chunk of its own).
    const kind = (await readdir(badDir)).includes("packs") ? "packs" : "chunks";
    const shard = (await readdir(join(badDir, kind)))[0]!;
    const file = join(badDir, kind, shard, (await readdir(join(badDir, kind, shard)))[0]!);
    const object = new Uint8Array(await readFile(file));
    object[object.length - 10]! ^= 0xff;
    await writeFile(file, object);
    const badSite = await startSite({
      pages: { "/": PAGE },
      directories: { "/dist/": await browserBundle() },
      fetch: objectsEndpoint(new LocalStore(badDir), ["other"]),
    });
    const context = await browser.newContext();
    try {
      const page = await openPage(context, badSite);
      const opened = await openIn(page, `${badSite.url}/v1/objects`, "other", { load: "eager" });
      assert.equal(opened.error, "CHECKSUM_MISMATCH", JSON.stringify(opened));
      assert.match(String(opened.message), /Cannot decode chunk [0-9a-f]{64}: its bytes hash to/);
      assert.match(String(opened.message), kind === "packs" ? /packs\// : /chunks\//);
    } finally {
      await context.close();
      await badSite.stop();
    }
  });

  it("runs a lazy replica's scans in the offload worker on a cross-origin isolated page", async () => {
    const isolated = await startSite({
      pages: { "/": PAGE },
      directories: { "/dist/": await browserBundle() },
      fetch: objectsEndpoint(new LocalStore(storeDir), ["app"]),
      isolated: true,
    });
    const context = await browser.newContext();
    // The page's and the worker's console errors: sqlite-wasm must not try to start OPFS VFSes Tessera never
    // uses (they fetch sqlite3-opfs-async-proxy.js, which the bundle does not ship, and log the 404).
    const consoleErrors: string[] = [];
    const collect = (message: ConsoleMessage) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    };
    context.on("page", (page) => {
      page.on("console", collect);
      page.on("worker", (worker) => worker.on("console", collect));
    });
    try {
      const page = await openPage(context, isolated);
      assert.equal(
        await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated),
        true,
      );
      const opened = await openIn(page, `${isolated.url}/v1/objects`, "app", {
        load: "lazy",
        memoryCacheBytes: 256 * 1024,
      });
      assert.equal(opened.engine, "wasm", JSON.stringify(opened));
      const sql = "SELECT count(*), sum(length(v)) FROM t";
      const expected = (await sqliteCli(db, `${sql};`)).trim().split("|");
      assert.deepEqual((await queryIn(page, sql)).map((row) => row.map(String)), [expected]);
      const memory = await page.evaluate(() =>
        (globalThis as unknown as PageGlobals).replica!.status().memory
      );
      assert.equal(memory.lazy, true);
      assert.ok((memory.offloaded ?? 0) > 0, `the scan ran in the worker: ${JSON.stringify(memory)}`);
      assert.ok(isolated.requests.some((r) => r.path === "/dist/tessera-worker.js" && r.status === 200));
      assert.deepEqual(isolated.requests.filter((r) => r.path.includes("opfs-async-proxy")), []);
      assert.deepEqual(consoleErrors, [], JSON.stringify(isolated.requests.filter((r) => r.status >= 400)));
    } finally {
      await context.close();
      await isolated.stop();
    }
  });

  it("opens in a sandboxed iframe (an opaque origin, no OPFS, no localStorage), with the cache off and saying why", async () => {
    const frame = (url: string) =>
      `<script type="module">
const t = await import("${url}/dist/tessera.js");
try {
  const r = await t.openReplica("app", { store: new t.HttpStore("${url}/v1/objects"), pollIntervalMs: 0 });
  const q = await r.execute("SELECT count(*) FROM t");
  const cache = new t.OpfsChunkCache();
  await cache.ready();
  parent.postMessage({ n: Number(q.rows[0][0]), origin: String(self.origin), disabled: String(cache.disabledReason) }, "*");
} catch (e) { parent.postMessage({ error: String(e && (e.code || e.name)) + ": " + String(e && e.message || e) }, "*"); }
</script>`;
    let url = "";
    const sandboxed = await startSite({
      pages: { "/": PAGE },
      directories: { "/dist/": await browserBundle() },
      cors: true,
      fetch: async (request) => {
        if (new URL(request.url).pathname !== "/sandboxed") {
          return await objectsEndpoint(new LocalStore(storeDir), ["app"])(request);
        }
        const doc = frame(url).replaceAll("&", "&amp;").replaceAll('"', "&quot;");
        return new Response(
          `<!doctype html><script>addEventListener("message", (e) => { globalThis.answer = e.data; });</script>` +
            `<iframe sandbox="allow-scripts" srcdoc="${doc}"></iframe>`,
          { headers: { "content-type": "text/html" } },
        );
      },
    });
    url = sandboxed.url;
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${sandboxed.url}/sandboxed`);
      const answer = await (await page.waitForFunction(
        () => (globalThis as { answer?: unknown }).answer,
        null,
        {
          timeout: 30_000,
        },
      )).jsonValue() as { n?: number; origin?: string; disabled?: string; error?: string };
      const expected = Number(await sqliteCli(db, "SELECT count(*) FROM t;"));
      assert.deepEqual(
        { n: answer.n, origin: answer.origin },
        { n: expected, origin: "null" },
        JSON.stringify(answer),
      );
      assert.match(answer.disabled ?? "", /^Cannot open OPFS chunk cache "tessera-chunks": /);
    } finally {
      await context.close();
      await sandboxed.stop();
    }
  });

  it("shares the OPFS cache between two tabs: the second opens with no chunk download", async () => {
    const context = await browser.newContext();
    try {
      const sql = "SELECT count(*), sum(length(v)), max(v) FROM t";
      const expected = (await sqliteCli(db, `${sql};`)).trim().split("|");
      const first = await openPage(context, site);
      site.reset();
      await openIn(first, `${site.url}/v1/objects`, "app", { load: "eager" });
      assert.deepEqual((await queryIn(first, sql)).map((row) => row.map(String)), [expected]);
      assert.ok(chunkDownloads(site) > 0, "the first tab downloaded the chunks");
      const kept = await settleOpfs(first);
      assert.ok(kept > 0, "the first tab kept chunks in OPFS");

      const second = await openPage(context, site);
      site.reset();
      await openIn(second, `${site.url}/v1/objects`, "app", { load: "eager" });
      assert.deepEqual((await queryIn(second, sql)).map((row) => row.map(String)), [expected]);
      assert.equal(
        chunkDownloads(site),
        0,
        "the second tab read every chunk from the first tab's OPFS cache",
      );
      // Both tabs go on answering, each from its own replica.
      assert.deepEqual((await queryIn(first, "SELECT count(*) FROM t"))[0], [Number(expected[0])]);
    } finally {
      await context.close();
    }
  });

  it("refuses a chunk damaged in OPFS, fetches it again from the store, and repairs the file", async () => {
    const context = await browser.newContext();
    try {
      const sql = "SELECT count(*), sum(length(v)), min(hex(b)) FROM t";
      const expected = (await sqliteCli(db, `${sql};`)).trim().split("|");
      const page = await openPage(context, site);
      await openIn(page, `${site.url}/v1/objects`, "app", { load: "eager" });
      await queryIn(page, sql);
      const kept = await settleOpfs(page);
      // Flip a byte in the middle of every chunk file the cache holds, as a disk or another program might.
      const damaged = await page.evaluate(async () => {
        const g = globalThis as unknown as PageGlobals;
        g.replica!.close();
        const storage =
          (navigator as unknown as { storage: { getDirectory(): Promise<Web.OpfsDirectoryHandle> } })
            .storage;
        const dir = await (await storage.getDirectory()).getDirectoryHandle("tessera-chunks");
        let n = 0;
        for await (const name of dir.keys()) {
          if (!/^[0-9a-f]{64}$/.test(name)) continue;
          const handle = await dir.getFileHandle(name);
          const bytes = new Uint8Array(await (await handle.getFile()).arrayBuffer());
          bytes[bytes.length >> 1]! ^= 0x5a;
          const writable = await handle.createWritable();
          await writable.write(bytes);
          await writable.close();
          n++;
        }
        return n;
      });
      assert.equal(damaged, kept);

      await page.reload();
      await page.waitForFunction(() => "tessera" in globalThis, null, { timeout: 30_000 });
      site.reset();
      await openIn(page, `${site.url}/v1/objects`, "app", { load: "eager" });
      assert.deepEqual((await queryIn(page, sql)).map((row) => row.map(String)), [expected]);
      assert.ok(chunkDownloads(site) > 0, "the damaged chunks came from the store again");
      const stats = await page.evaluate(() => {
        const g = globalThis as unknown as PageGlobals;
        return new g.tessera.OpfsChunkCache().usage();
      });
      assert.ok(stats.chunks > 0);
      await settleOpfs(page);

      // The files were replaced with good ones: the next load downloads nothing.
      await page.reload();
      await page.waitForFunction(() => "tessera" in globalThis, null, { timeout: 30_000 });
      site.reset();
      await openIn(page, `${site.url}/v1/objects`, "app", { load: "eager" });
      assert.deepEqual((await queryIn(page, sql)).map((row) => row.map(String)), [expected]);
      assert.equal(chunkDownloads(site), 0);
    } finally {
      await context.close();
    }
  });
});
