/**
 * The browser benchmark: a replica in headless chromium (Debian's, driven by playwright-core) against the
 * same replica under Deno, in one run, on one database served over loopback HTTP by the replica server's
 * objects endpoint.
 *
 * - open, cold: from the HTTP store, no cache (chromium: OPFS emptied first; Deno: memory only);
 * - open, warm: from the persistent cache (chromium: OPFS; Deno: a cache directory), with the chunk
 *   downloads counted at the server (each should be 0);
 * - point selects by primary key on uniformly random ids, one at a time, for a few seconds, each answer
 *   checked.
 *
 * Both sides load sqlite-wasm before timing (a warm-up open), so an open is Tessera's work: the pointer,
 * the manifest, the chunks, verification, the image. The site answers `no-store`, so chromium's HTTP cache
 * cannot stand in for OPFS.
 *
 * ```sh
 * deno task bench:browser [--rows 100000] [--runs 3] [--seconds 3] [--results bench/results/browser]
 * ```
 *
 * @module
 */

import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import type { Page } from "playwright-core";
import { openReplica } from "../../src/config/replica.ts";
import { HttpStore } from "../../src/store/http.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import type * as Web from "../../src/web.ts";
import {
  browserBundle,
  launchProfile,
  objectsEndpoint,
  type Site,
  startSite,
} from "../../test/_helpers/browser.ts";
import { makeTempDir, removeDir } from "../../test/_helpers/temp.ts";
import { writePointsDatabase } from "./e2e_server.ts";
import { int, markdownTable, ms, randomKeys } from "./replica_report.ts";

const NAME = "points";
const POINT_SQL = "SELECT s FROM t WHERE id = ?";
const PAGE = `<!doctype html><meta charset="utf-8"><title>tessera bench</title>
<script type="module">import * as tessera from "/dist/tessera.js"; globalThis.tessera = tessera;</script>`;

interface PageGlobals {
  tessera: typeof Web;
  replica?: Web.Replica;
  cache?: Web.OpfsChunkCache;
}

/** One side's figures. */
interface Side {
  coldMs: number[];
  warmMs: number[];
  warmChunkGets: number[];
  selectsPerSecond: number;
  selects: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const expectedS = (id: number) => `row-${String(id).padStart(8, "0")}`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: "string", default: "100000" },
      runs: { type: "string", default: "3" },
      seconds: { type: "string", default: "3" },
      results: { type: "string", default: "bench/results/browser" },
    },
  });
  const rows = Number(values.rows);
  const runs = Number(values.runs);
  const seconds = Number(values.seconds);
  const started = Date.now();
  const work = await makeTempDir("bench-browser");
  try {
    const db = join(work, "points.db");
    console.error(`browser bench: writing ${int(rows)} rows with the sqlite3 CLI`);
    await writePointsDatabase(db, rows);
    const bytes = (await stat(db)).size;
    const store = new LocalStore(join(work, "store"));
    await syncDatabase(db, { stores: [store], name: NAME, hostname: "bench", spoolDir: join(work, "spool") });
    // No HTTP cache may stand in for OPFS: every answer is no-store, so warm opens come from the cache under test.
    const site = await startSite({
      pages: { "/": PAGE },
      directories: { "/dist/": await browserBundle() },
      fetch: objectsEndpoint(store, [NAME], { noStore: true }),
    });
    const storeUrl = `${site.url}/v1/objects`;
    const keys = randomKeys(1 << 16, rows, 11);
    try {
      console.error("browser bench: chromium");
      const browser = await measureChromium(site, storeUrl, keys, runs, seconds);
      console.error("browser bench: deno");
      const deno = await measureDeno(site, storeUrl, keys, runs, seconds, work);
      const lines = report({ rows, bytes, runs, seconds, browser, deno, elapsedMs: Date.now() - started });
      await mkdir(values.results, { recursive: true });
      await writeFile(join(values.results, "LATEST.md"), lines.join("\n") + "\n");
      await writeFile(
        join(values.results, "latest.json"),
        JSON.stringify({ rows, bytes, runs, seconds, browser, deno }, null, 2) + "\n",
      );
      console.log(lines.join("\n"));
    } finally {
      await site.stop();
    }
  } finally {
    await removeDir(work);
  }
}

async function measureChromium(
  site: Site,
  storeUrl: string,
  keys: Int32Array,
  runs: number,
  seconds: number,
): Promise<Side & { version: string }> {
  const { context, directory } = await launchProfile();
  const side: Side = { coldMs: [], warmMs: [], warmChunkGets: [], selectsPerSecond: 0, selects: 0 };
  try {
    const version = context.browser()?.version() ?? "chromium";
    for (let run = 0; run < runs; run++) {
      const page = await context.newPage();
      await page.goto(`${site.url}/`);
      await page.waitForFunction(() => "tessera" in globalThis);
      // Warm-up: sqlite-wasm loads and compiles; then the cache is emptied for the cold open.
      await openInPage(page, storeUrl);
      await page.evaluate(async () => {
        const g = globalThis as unknown as PageGlobals;
        g.replica!.close();
        const storage = (navigator as unknown as {
          storage: { getDirectory(): Promise<{ removeEntry(name: string, o: object): Promise<void> }> };
        }).storage;
        await (await storage.getDirectory()).removeEntry("tessera-chunks", { recursive: true }).catch(
          () => {},
        );
      });
      side.coldMs.push(await openInPage(page, storeUrl));
      await page.evaluate(async () => {
        const g = globalThis as unknown as PageGlobals;
        g.replica!.close();
        await g.cache!.settled();
      });
      site.reset();
      side.warmMs.push(await openInPage(page, storeUrl));
      side.warmChunkGets.push(chunkGets(site));
      if (run === runs - 1) {
        const measured = await page.evaluate(async ({ keys, seconds }) => {
          const g = globalThis as unknown as PageGlobals;
          const replica = g.replica!;
          let n = 0;
          let wrong = 0;
          const until = performance.now() + seconds * 1000;
          const t0 = performance.now();
          while (performance.now() < until) {
            for (let k = 0; k < 100; k++, n++) {
              const id = keys[n % keys.length]!;
              const got = await replica.execute({ sql: "SELECT s FROM t WHERE id = ?", args: [id] });
              if (got.rows[0]?.[0] !== `row-${String(id).padStart(8, "0")}`) wrong++;
            }
          }
          return { n, wrong, ms: performance.now() - t0 };
        }, { keys: [...keys], seconds });
        if (measured.wrong > 0) throw new Error(`chromium: ${measured.wrong} point selects answered wrong`);
        side.selects = measured.n;
        side.selectsPerSecond = measured.n / (measured.ms / 1000);
      }
      await page.close();
    }
    return { ...side, version };
  } finally {
    await context.close();
    await rm(directory, { recursive: true, force: true });
  }
}

/** Opens the replica in the page with an OPFS cache; resolves to the open's time in ms (first query included). */
async function openInPage(page: Page, storeUrl: string): Promise<number> {
  return await page.evaluate(async (storeUrl) => {
    const g = globalThis as unknown as PageGlobals;
    const t0 = performance.now();
    g.cache = new g.tessera.OpfsChunkCache();
    g.replica = await g.tessera.openReplica("points", {
      store: new g.tessera.HttpStore(storeUrl),
      caches: [g.cache],
      pollIntervalMs: 0,
    });
    await g.replica.execute({ sql: "SELECT s FROM t WHERE id = ?", args: [1] });
    return performance.now() - t0;
  }, storeUrl);
}

async function measureDeno(
  site: Site,
  storeUrl: string,
  keys: Int32Array,
  runs: number,
  seconds: number,
  work: string,
): Promise<Side> {
  const side: Side = { coldMs: [], warmMs: [], warmChunkGets: [], selectsPerSecond: 0, selects: 0 };
  const store = new HttpStore(storeUrl);
  const open = async (cacheDirectory?: string) => {
    const t0 = performance.now();
    const replica = await openReplica(NAME, {
      store,
      hostname: "bench",
      pollIntervalMs: 0,
      ...(cacheDirectory ? { cacheDirectory } : {}),
    });
    await replica.execute({ sql: POINT_SQL, args: [1] });
    return { replica, ms: performance.now() - t0 };
  };
  (await open()).replica.close(); // warm-up: sqlite-wasm loads
  for (let run = 0; run < runs; run++) {
    const cacheDirectory = join(work, `deno-cache-${run}`);
    const cold = await open(cacheDirectory);
    side.coldMs.push(cold.ms);
    cold.replica.close();
    await quiet(cacheDirectory);
    site.reset();
    const warm = await open(cacheDirectory);
    side.warmMs.push(warm.ms);
    side.warmChunkGets.push(chunkGets(site));
    if (run === runs - 1) {
      let n = 0;
      const until = performance.now() + seconds * 1000;
      const t0 = performance.now();
      while (performance.now() < until) {
        for (let k = 0; k < 100; k++, n++) {
          const id = keys[n % keys.length]!;
          const got = await warm.replica.execute({ sql: POINT_SQL, args: [id] });
          if (got.rows[0]?.[0] !== expectedS(id)) {
            throw new Error(`deno: id ${id} answered ${got.rows[0]?.[0]}`);
          }
        }
      }
      side.selects = n;
      side.selectsPerSecond = n / ((performance.now() - t0) / 1000);
    }
    warm.replica.close();
  }
  return side;
}

/** Waits until the cache directory's files stop changing: the cold open's cache writes end in the background. */
async function quiet(directory: string): Promise<void> {
  let last = -1;
  for (;;) {
    const count = (await readdir(directory, { recursive: true }).catch(() => [])).length;
    if (count === last) return;
    last = count;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

function chunkGets(site: Site): number {
  return site.requests.filter((r) => r.method === "GET" && /\/(packs|chunks)\//.test(r.path)).length;
}

function report(r: {
  rows: number;
  bytes: number;
  runs: number;
  seconds: number;
  browser: Side & { version: string };
  deno: Side;
  elapsedMs: number;
}): string[] {
  const { browser, deno } = r;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const table = markdownTable(
    ["", "chromium", "deno", "chromium vs deno"],
    [
      [
        "open, cold (HTTP, no cache), median ms",
        ms(median(browser.coldMs)),
        ms(median(deno.coldMs)),
        ratio(
          median(browser.coldMs),
          median(deno.coldMs),
        ),
      ],
      [
        "open, warm (chromium: OPFS; deno: cache directory), median ms",
        ms(median(browser.warmMs)),
        ms(median(deno.warmMs)),
        ratio(median(browser.warmMs), median(deno.warmMs)),
      ],
      [
        "chunk downloads during the warm opens",
        browser.warmChunkGets.join(", "),
        deno.warmChunkGets.join(", "),
        "",
      ],
      [
        "point selects per second (one at a time)",
        int(browser.selectsPerSecond),
        int(deno.selectsPerSecond),
        ratio(browser.selectsPerSecond, deno.selectsPerSecond),
      ],
    ],
  );
  return [
    "# Tessera browser benchmark: latest results",
    "",
    `Measured ${
      new Date().toISOString().replace("T", " ").slice(0, 19)
    } UTC with \`deno task bench:browser\` ` +
    `(${(r.elapsedMs / 1000).toFixed(1)} s in all).`,
    "",
    `- machine: ${cpus().length} cores (${cpus()[0]?.model.trim() ?? "?"}), ${
      Math.round(totalmem() / 2 ** 30)
    } GiB RAM, ${process.platform}`,
    `- browser: headless chromium ${browser.version} (Debian), driven by playwright-core`,
    `- deno: ${process.versions.deno ?? "?"} (this process)`,
    `- database: ${int(r.rows)} rows (${(r.bytes / 2 ** 20).toFixed(1)} MiB, written by the sqlite3 CLI), ` +
    "synced to a directory store and served on 127.0.0.1 by the replica server's objects endpoint, every answer " +
    "`no-store` so no HTTP cache stands in for the chunk caches",
    `- opens: ${r.runs} of each; the time from \`openReplica\` to the first point select's answer, with ` +
    "sqlite-wasm already loaded; warm opens read every chunk from the cache (downloads counted at the server)",
    `- point selects: ${r.seconds} s, one statement at a time, random ids; chromium ${
      int(browser.selects)
    } and ` +
    `deno ${int(deno.selects)} answers, each checked`,
    "",
    ...table,
    "",
    `Raw opens, ms: chromium cold ${browser.coldMs.map(ms).join(", ")}; warm ${
      browser.warmMs.map(ms).join(", ")
    }; ` +
    `deno cold ${deno.coldMs.map(ms).join(", ")}; warm ${deno.warmMs.map(ms).join(", ")}.`,
  ];
}

if (import.meta.main) await main();
