/**
 * The OPFS chunk cache in a real browser: Debian's chromium, headless, on a persistent profile. The page
 * module `_opfs_cache_page.ts` runs the chunk cache suite (`../chunk/_cache_suite.ts`) and the OPFS-only
 * cases on a page and in a dedicated worker, one test here per case; this file adds what takes more than
 * one page: a reload, two tabs at once, the browser opened again on its profile. Outside a browser (Deno,
 * Bun) the cache is unavailable and keeps out of the way.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { OpfsChunkCache } from "../../src/chunk/opfs_cache.ts";
import { MemoryStore } from "../../src/store/memory.ts";
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
      lastError: undefined,
    });
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

const REPLICA_PAGE = `<!doctype html><meta charset="utf-8"><title>replica</title>
<script type="module">import * as tessera from "/dist/tessera.js"; globalThis.tessera = tessera;</script>`;

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
    site = await startSite({
      pages: { "/": REPLICA_PAGE },
      directories: { "/dist/": bundle },
      fetch: objectsEndpoint(store, ["app"], { noStore: true }),
    });
  });

  after(async () => {
    await browser?.close();
    await site?.stop();
    await removeDir(dir);
  });

  const chunkDownloads = () =>
    site.requests.filter((r) => /^\/v1\/objects\/(chunks|packs)\//.test(r.path)).length;

  /** Opens the replica on a fresh load of the page, queries it, and waits until the OPFS cache stops growing. */
  async function query(page: Page, extra: Record<string, unknown> = {}) {
    await page.goto(`${site.url}/`);
    await page.waitForFunction(() => "tessera" in globalThis, null, { timeout: 30_000 });
    return await page.evaluate(async ({ store, extra }) => {
      const { tessera } = globalThis as unknown as { tessera: typeof Web };
      const replica = await tessera.openReplica("app", {
        store: new tessera.HttpStore(store),
        pollIntervalMs: 0,
        load: "eager",
        ...extra,
      });
      const result = await replica.execute("SELECT count(*), sum(length(v)) FROM t");
      replica.close();
      // The replica's cache writes run in the background: wait until two looks a moment apart agree.
      const cache = new tessera.OpfsChunkCache();
      let chunks = -1;
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const now = (await cache.usage()).chunks;
        if (now === chunks) break;
        chunks = now;
      }
      return { row: result.columns.map((_, i) => String(result.rows[0]![i])), chunks };
    }, { store: `${site.url}/v1/objects`, extra });
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
      assert.deepEqual(again, first);
      assert.equal(chunkDownloads(), 0, "the reload downloaded chunks OPFS held");

      site.reset();
      const off = await query(page, { opfs: false });
      assert.deepEqual(off.row, expected);
      assert.ok(chunkDownloads() > 0, "with opfs: false the chunks still came from OPFS");
    } finally {
      await context.close();
    }
  });
});
