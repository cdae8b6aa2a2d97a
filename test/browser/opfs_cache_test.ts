/**
 * The OPFS chunk cache in a real browser: Debian's chromium, headless, on a persistent profile. The page
 * module `_opfs_cache_page.ts` runs the chunk cache suite (`../chunk/_cache_suite.ts`) and the OPFS-only
 * cases on a page and in a dedicated worker, one test here per case; this file adds what takes more than
 * one page: a reload, two tabs at once, the browser opened again on its profile. Outside a browser (Deno,
 * Bun) the cache is unavailable and keeps out of the way.
 */

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { OpfsChunkCache } from "../../src/chunk/opfs_cache.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { openReplica } from "../../src/web.ts";
import type * as Web from "../../src/web.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import {
  browserBundle,
  bundlePageModule,
  launchChromium,
  launchProfile,
  objectsEndpoint,
  type Site,
  startSite,
} from "../_helpers/browser.ts";
import { sqliteCli } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { noiseChunk } from "../chunk/_cache_suite.ts";
import { CASE_NAMES, type OpfsCacheTests, type Where } from "./_opfs_cache_page.ts";

const PAGE = `<!doctype html><meta charset="utf-8"><title>OPFS cache tests</title>
<script type="module" src="/t/page.js"></script>`;

const CHUNK_OBJECT = 1024 + 12;

/** `opfs` options openReplica must reject, the error class and the message, on every runtime. */
const BAD_OPFS_OPTIONS = [
  [
    null,
    TypeError,
    "Cannot open a replica: opfs must be false or an object of OpfsChunkCache options, not null",
  ],
  [{ capacityBytes: 0 }, RangeError, "Cannot open a replica: opfs.capacityBytes 0 is not a positive integer"],
  [{ directory: "a/b" }, TypeError, 'Cannot open a replica: opfs.directory "a/b" is not one file name'],
  [
    { lockPatienceMs: 0.5 },
    RangeError,
    "Cannot open a replica: opfs.lockPatienceMs 0.5 is not a positive integer (milliseconds)",
  ],
] as const;

describe("OpfsChunkCache outside a browser", () => {
  it("is unavailable, and a cache made anyway answers misses, drops puts and says why", async () => {
    assert.equal(OpfsChunkCache.available(), false);
    const cache = new OpfsChunkCache();
    assert.match(
      cache.disabledReason ?? "",
      /^Cannot open OPFS chunk cache "tessera-chunks": this runtime has no origin private file system/,
    );
    const x = await noiseChunk(100, 1);
    assert.equal(await cache.get(x.id), undefined);
    await cache.put(x.id, x.bytes);
    assert.equal(await cache.get(x.id), undefined);
    assert.equal(await cache.ready(), false);
    await cache.settled();
    assert.deepEqual(await cache.usage(), { chunks: 0, bytes: 0 });
    assert.deepEqual(cache.stats(), {
      hits: 0,
      misses: 2,
      puts: 0,
      evictions: 0,
      damaged: 0,
      dropped: 1,
      lockTimeouts: 0,
      lastError: undefined,
    });
  });

  it("openReplica() rejects bad opfs options, never throwing, with an error naming the option", async () => {
    for (const [opfs, error, said] of BAD_OPFS_OPTIONS) {
      let opening: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        opening = openReplica("app", { store: new MemoryStore(), opfs: opfs as never });
      }, `opfs ${JSON.stringify(opfs)} threw`);
      await assert.rejects(opening!, (thrown) => thrown instanceof error && thrown.message === said);
    }
  });

  it("rejects a bad id or bad bytes as any cache does", async () => {
    const cache = new OpfsChunkCache();
    await assert.rejects(cache.get(new Uint8Array(5)), TypeError);
    await assert.rejects(cache.put(new Uint8Array(5), new Uint8Array(1)), TypeError);
    await assert.rejects(cache.put(new Uint8Array(32), new Uint8Array(0)), RangeError);
  });
});

function tests(page: Page) {
  return {
    run: (name: string, where: Where) =>
      page.evaluate(([name, where]) => {
        return (globalThis as unknown as { opfsCacheTests: OpfsCacheTests }).opfsCacheTests.run(name, where);
      }, [name, where] as const),
    putChunks: (location: string, seeds: number[]) =>
      page.evaluate(([location, seeds]) => {
        return (globalThis as unknown as { opfsCacheTests: OpfsCacheTests }).opfsCacheTests.putChunks(
          location,
          seeds,
        );
      }, [location, seeds] as const),
    readChunks: (location: string, seeds: number[]) =>
      page.evaluate(([location, seeds]) => {
        return (globalThis as unknown as { opfsCacheTests: OpfsCacheTests }).opfsCacheTests.readChunks(
          location,
          seeds,
        );
      }, [location, seeds] as const),
    churn: (options: Parameters<OpfsCacheTests["churn"]>[0]) =>
      page.evaluate((options) => {
        return (globalThis as unknown as { opfsCacheTests: OpfsCacheTests }).opfsCacheTests.churn(options);
      }, options),
  };
}

describe("OpfsChunkCache in chromium", () => {
  let work: string;
  let site: Site;
  let profile: { context: BrowserContext; directory: string };
  let page: Page;
  const pageErrors: string[] = [];

  async function openPage(context: BrowserContext): Promise<Page> {
    const opened = await context.newPage();
    opened.on("pageerror", (error) => pageErrors.push(error.message));
    await opened.goto(`${site.url}/`);
    await opened.waitForFunction(() => "opfsCacheTests" in globalThis, null, { timeout: 30_000 });
    return opened;
  }

  before(async () => {
    work = await makeTempDir("opfs-cache-page");
    await bundlePageModule("test/browser/_opfs_cache_page.ts", join(work, "page.js"));
    site = await startSite({ pages: { "/": PAGE }, directories: { "/t/": work } });
    profile = await launchProfile();
    page = await openPage(profile.context);
  });

  after(async () => {
    await profile?.context.close();
    await site?.stop();
    await removeDir(work);
    if (profile) await removeDir(profile.directory);
  });

  for (const where of ["page", "worker"] as const) {
    describe(where === "page" ? "on a page" : "in a dedicated worker", () => {
      for (const name of CASE_NAMES) {
        it(name, async () => {
          const result = await tests(page).run(name, where);
          assert.equal(result.error, undefined, `"${name}" failed in the ${where}: ${result.error}`);
        });
      }
    });
  }

  it("finds the chunks it kept after a reload of the page", async () => {
    const seeds = Array.from({ length: 12 }, (_, i) => 3000 + i);
    await tests(page).putChunks("reloaded", seeds);
    await page.reload();
    await page.waitForFunction(() => "opfsCacheTests" in globalThis, null, { timeout: 30_000 });
    assert.deepEqual(await tests(page).readChunks("reloaded", seeds), { hits: seeds.length, wrong: [] });
  });

  it("two tabs writing and evicting at once stay within capacity and never serve wrong bytes", async () => {
    const other = await openPage(profile.context);
    try {
      const capacityChunks = 8;
      const options = { location: "two-tabs", rounds: 40, capacityChunks };
      const [a, b] = await Promise.all([
        tests(page).churn({ ...options, seed: 1 }),
        tests(other).churn({ ...options, seed: 2 }),
      ]);
      for (const [tab, result] of [["the first tab", a], ["the second tab", b]] as const) {
        assert.deepEqual(result.wrong, [], `${tab} read wrong bytes`);
        assert.ok(
          result.mostBytes <= capacityChunks * CHUNK_OBJECT,
          `${tab} saw ${result.mostBytes} bytes of chunk files, capacity ${capacityChunks * CHUNK_OBJECT}`,
        );
        assert.ok(
          result.hits > 0 && result.puts > 0 && result.evictions > 0,
          `${tab}: ${JSON.stringify(result)}`,
        );
      }
    } finally {
      await other.close();
    }
  });

  it("a cache whose site data was cleared makes its directory again at its next change", async () => {
    const [x, y, z] = [5000, 5001, 5002];
    await tests(page).putChunks("/cleared", [x, y, z]);
    const cdp = await profile.context.newCDPSession(page);
    await cdp.send("Storage.clearDataForOrigin", { origin: site.url, storageTypes: "all" });
    await cdp.detach();
    assert.deepEqual(await tests(page).readChunks("/cleared", [x]), { hits: 0, wrong: [] });
    // The change that finds the directory gone loses its chunk; the next one makes it again.
    await tests(page).putChunks("/cleared", [y]);
    await tests(page).putChunks("/cleared", [z]);
    assert.deepEqual(await tests(page).readChunks("/cleared", [z]), { hits: 1, wrong: [] });
  });

  it("finds the chunks it kept after the browser is closed and opened again on its profile", async () => {
    const seeds = Array.from({ length: 12 }, (_, i) => 4000 + i);
    await tests(page).putChunks("relaunched", seeds);
    await profile.context.close();
    profile = await launchProfile(profile.directory);
    page = await openPage(profile.context);
    assert.deepEqual(await tests(page).readChunks("relaunched", seeds), { hits: seeds.length, wrong: [] });
  });

  it("raised no error on any page", () => {
    assert.deepEqual(pageErrors, []);
  });
});

// The replicas' default OPFS cache is private to the bundle: the page finds it by the puts it gets, so a
// test can wait for its background writes (\`settleCaches()\`) instead of guessing when they end.
const REPLICA_PAGE = `<!doctype html><meta charset="utf-8"><title>replica</title>
<script type="module">
import * as tessera from "/dist/tessera.js";
const caches = new Set();
const put = tessera.OpfsChunkCache.prototype.put;
tessera.OpfsChunkCache.prototype.put = function (...args) {
  caches.add(this);
  return put.apply(this, args);
};
globalThis.settleCaches = () => Promise.all([...caches].map((cache) => cache.settled()));
globalThis.tessera = tessera;
</script>`;

/** What the replica page offers. */
interface ReplicaPage {
  tessera: typeof Web;
  settleCaches(): Promise<void>;
}

describe("openReplica in chromium", () => {
  let dir: string;
  let site: Site;
  let browser: Browser;
  let expected: string[];

  before(async () => {
    dir = await makeTempDir("opfs-replica");
    const db = join(dir, "app.db");
    await sqliteCli(
      db,
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); " +
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) " +
        "INSERT INTO t SELECT i, printf('row %06d kept in the browser', i) FROM n;",
    );
    expected = (await sqliteCli(db, "SELECT count(*), sum(length(v)) FROM t;")).trim().split("|");
    const store = new MemoryStore();
    await syncDatabase(db, {
      stores: [store],
      name: "app",
      hostname: "opfs-host",
      spoolDir: join(dir, "spool"),
    });
    const [bundle, chromium] = await Promise.all([browserBundle(), launchChromium()]);
    browser = chromium;
    const objects = objectsEndpoint(store, ["app"], { noStore: true });
    site = await startSite({
      pages: { "/": REPLICA_PAGE },
      directories: { "/dist/": bundle },
      fetch: async (request) => (await dataFramePages(request, bundle)) ?? await objects(request),
    });
  });

  after(async () => {
    await browser?.close();
    await site?.stop();
    await removeDir(dir);
  });

  const chunkDownloads = () =>
    site.requests.filter((r) => /^\/v1\/objects\/(chunks|packs)\//.test(r.path)).length;

  /**
   * Opens the replica on a fresh load of the page and queries it, timing both; unless `settle` is false,
   * then waits for the cache's writes and counts its chunks.
   */
  async function query(page: Page, options: { extra?: Record<string, unknown>; settle?: boolean } = {}) {
    await page.goto(`${site.url}/`);
    await page.waitForFunction(() => "tessera" in globalThis, null, { timeout: 30_000 });
    const { row, ms } = await page.evaluate(async ({ store, extra }) => {
      const { tessera } = globalThis as unknown as ReplicaPage;
      const started = performance.now();
      const replica = await tessera.openReplica("app", {
        store: new tessera.HttpStore(store),
        pollIntervalMs: 0,
        load: "eager",
        ...extra,
      });
      const result = await replica.execute("SELECT count(*), sum(length(v)) FROM t");
      const ms = performance.now() - started;
      replica.close();
      return { row: result.columns.map((_, i) => String(result.rows[0]![i])), ms };
    }, { store: `${site.url}/v1/objects`, extra: options.extra ?? {} });
    return { row, ms, chunks: options.settle === false ? -1 : await settledChunks(page) };
  }

  /** Waits for the writes of the page's OPFS caches, then counts the chunks of the default one. */
  function settledChunks(page: Page): Promise<number> {
    return page.evaluate(async () => {
      const { tessera, settleCaches } = globalThis as unknown as ReplicaPage;
      await settleCaches();
      return (await new tessera.OpfsChunkCache().usage()).chunks;
    });
  }

  it("keeps the chunks a replica fetched in OPFS, and after a reload reads them from there, not the store", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const first = await query(page);
      assert.deepEqual(first.row, expected);
      assert.ok(first.chunks > 0, "no chunk was kept in OPFS");
      assert.ok(chunkDownloads() > 0, "the first load downloaded no chunk");

      site.reset();
      const again = await query(page);
      assert.deepEqual([again.row, again.chunks], [first.row, first.chunks]);
      assert.equal(chunkDownloads(), 0, "the reload downloaded chunks OPFS held");

      site.reset();
      const off = await query(page, { extra: { opfs: false } });
      assert.deepEqual(off.row, expected);
      assert.ok(chunkDownloads() > 0, "with opfs: false the chunks still came from OPFS");
    } finally {
      await context.close();
    }
  });

  it("opens and queries a replica as fast while another tab holds the OPFS cache's lock, which then catches up", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const holder = await context.newPage();
      await holder.goto(`${site.url}/`);
      for (const load of ["eager", "lazy"] as const) {
        await clearOpfs(holder);
        const free = await query(page, { extra: { load } });
        assert.deepEqual(free.row, expected);
        await clearOpfs(holder);
        await holder.evaluate(() =>
          new Promise<void>((granted) => {
            const { locks } = navigator as unknown as {
              locks: { request(name: string, callback: () => Promise<void>): Promise<void> };
            };
            void locks.request("tessera-chunk-cache:tessera-chunks", () => {
              granted();
              return new Promise((release) => ((globalThis as { release?: () => void }).release = release));
            });
          })
        );
        const held = await query(page, { extra: { load }, settle: false });
        assert.deepEqual(held.row, expected);
        // Waiting for the lock cost 30 s a batch of cache writes: a hundred times an open's time.
        assert.ok(
          held.ms < 10 * free.ms,
          `${load}: ${Math.round(held.ms)} ms with the lock held, ${Math.round(free.ms)} ms without`,
        );
        await holder.evaluate(() => (globalThis as unknown as { release(): void }).release());
        assert.equal(await settledChunks(page), free.chunks, `${load}: the cache did not catch up`);
      }
    } finally {
      await context.close();
    }
  });

  it("openReplica() rejects bad opfs options in a page, never throwing", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${site.url}/`);
      await page.waitForFunction(() => "tessera" in globalThis, null, { timeout: 30_000 });
      const outcomes = await page.evaluate(async ({ store, cases }) => {
        const { tessera } = globalThis as unknown as { tessera: typeof Web };
        const out: string[] = [];
        for (const opfs of cases) {
          try {
            await tessera.openReplica("app", { store: new tessera.HttpStore(store), opfs: opfs as never })
              .then(
                (replica) => (replica.close(), out.push("opened")),
                (error) => out.push(`rejected ${error.name}: ${error.message}`),
              );
          } catch (error) {
            out.push(`threw ${(error as Error).name}: ${(error as Error).message}`);
          }
        }
        return out;
      }, { store: `${site.url}/v1/objects`, cases: BAD_OPFS_OPTIONS.map(([opfs]) => opfs) });
      assert.deepEqual(
        outcomes,
        BAD_OPFS_OPTIONS.map(([, error, said]) => `rejected ${error.name}: ${said}`),
      );
    } finally {
      await page.close();
    }
  });

  it("openReplica() in a frame without crypto.subtle rejects with UNSUPPORTED, saying to serve over HTTPS", async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${site.url}/data-frame`);
      const said = await page.waitForFunction(() => (globalThis as { said?: unknown }).said, null, {
        timeout: 30_000,
      }).then((handle) => handle.jsonValue()) as { secure: boolean; code?: string; message?: string };
      assert.equal(said.secure, false, "the data: frame is a secure context");
      assert.equal(said.code, "UNSUPPORTED", JSON.stringify(said));
      assert.match(
        said.message ?? "",
        /no Web Crypto \(crypto\.subtle\).*serve the page over HTTPS or from localhost/,
      );
    } finally {
      await page.close();
    }
  });
});

/** Empties the default OPFS cache's directory, from a page of the site. */
async function clearOpfs(page: Page): Promise<void> {
  await page.evaluate(async () => {
    const { storage } = navigator as unknown as {
      storage: { getDirectory(): Promise<{ removeEntry(name: string, options: object): Promise<void> }> };
    };
    await (await storage.getDirectory()).removeEntry("tessera-chunks", { recursive: true }).catch(() => {});
  });
}

/**
 * `/data-frame`: a page whose data: frame (an opaque origin, not a secure context) opens a replica with the
 * bundle, served with CORS under `/cdist/`, and posts what happened to the page (`globalThis.said`).
 */
async function dataFramePages(request: Request, bundle: string): Promise<Response | undefined> {
  const url = new URL(request.url);
  if (url.pathname.startsWith("/cdist/")) {
    const name = url.pathname.slice("/cdist/".length);
    if (!/^[\w.-]+$/.test(name)) return undefined;
    const body = await readFile(join(bundle, name)).catch(() => undefined);
    if (!body) return undefined;
    const type = name.endsWith(".wasm") ? "application/wasm" : "text/javascript";
    return new Response(body, { headers: { "content-type": type, "access-control-allow-origin": "*" } });
  }
  if (url.pathname !== "/data-frame") return undefined;
  const frame = `<script type="module">
const said = { secure: self.isSecureContext };
try {
  const tessera = await import("${url.origin}/cdist/tessera.js");
  const replica = await tessera.openReplica("app", { store: new tessera.HttpStore("${url.origin}/v1/objects") });
  replica.close();
  said.opened = true;
} catch (error) {
  said.code = error.code;
  said.message = String(error.message);
}
parent.postMessage(said, "*");
</script>`;
  const page = `<!doctype html><meta charset="utf-8"><title>data: frame</title>
<script>addEventListener("message", (event) => { globalThis.said = event.data; });</script>
<iframe src="data:text/html;base64,${btoa(frame)}"></iframe>`;
  return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
}
