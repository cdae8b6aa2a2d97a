/**
 * examples/browser/ in headless chromium, as a user would run it: `serveExample` (what
 * `deno task example:browser` runs) over a store that `syncDatabase` published from a database the sqlite3
 * CLI wrote. The page lists the tables, runs a typed query, and shows freshness updating live when the
 * writer syncs. A screenshot of the page is saved to `.tmp/test-output/browser/example-page.png`.
 */

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser } from "playwright-core";
import { serveExample } from "../../examples/browser/serve.ts";
import type { Listening } from "../../src/server/serve.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { launchChromium } from "../_helpers/browser.ts";
import { ROOT, sqliteCli } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** Where the screenshot goes: the suite's output directory, kept after the run for a person to look at. */
export const OUTPUT_DIR = join(ROOT, ".tmp/test-output/browser");

describe("examples/browser in chromium", () => {
  let dir: string;
  let db: string;
  let storeDir: string;
  let server: Listening;
  let browser: Browser;

  const sync = () =>
    syncDatabase(db, {
      stores: [new LocalStore(storeDir)],
      name: "shop",
      hostname: "example-host",
      spoolDir: join(dir, "spool"),
    });

  before(async () => {
    dir = await makeTempDir("browser-example");
    db = join(dir, "shop.db");
    storeDir = join(dir, "store");
    await sqliteCli(
      db,
      `PRAGMA journal_mode=WAL;
       CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
       CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customers, total REAL, note BLOB);
       CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
       INSERT INTO customers VALUES (1, 'Ada', 'London'), (2, 'Grace', 'New York'), (3, 'Edsger', NULL);
       WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO orders SELECT i, 1 + i % 3, round((i * 37) % 250 + 0.5, 2), NULL FROM n;`,
    );
    await sync();
    [server, browser] = await Promise.all([
      serveExample({ store: storeDir, db: "shop", port: 0 }),
      launchChromium(),
    ]);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await removeDir(dir);
  });

  it("lists the tables, runs a typed query, follows a sync live, and is screenshotted", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${server.url}/`);
    await page.waitForSelector("body[data-state=open]", { timeout: 30_000 });
    assert.equal(
      await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated),
      true,
    );
    assert.deepEqual(await page.locator("#tables li button").allTextContents(), [
      "big_orders",
      "customers",
      "orders",
    ]);
    assert.equal(await page.locator("#sequence").textContent(), "1");

    await page.fill(
      "#sql",
      "SELECT c.name, count(*) AS orders, round(sum(o.total), 2) AS spent\n" +
        "FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.name ORDER BY c.name",
    );
    await page.click("#run");
    await page.waitForSelector("body[data-ran='1']");
    const expected = (await sqliteCli(
      db,
      "SELECT c.name, count(*), round(sum(o.total), 2) FROM orders o JOIN customers c ON c.id = o.customer " +
        "GROUP BY c.name ORDER BY c.name;",
    )).split("\n").map((line) =>
      line.split("|").map((cell) => String(Number(cell)) === "NaN" ? cell : String(Number(cell)))
    );
    // The CLI prints REAL 209154.0 where JavaScript prints 209154: compare numbers as numbers.
    assert.deepEqual(await page.locator("#results th").allTextContents(), ["name", "orders", "spent"]);
    const cells = await page.locator("#results tbody tr").evaluateAll((rows) =>
      rows.map((row) => [...row.querySelectorAll("td")].map((td) => td.textContent))
    );
    assert.deepEqual(cells, expected);

    // A statement the replica refuses shows SQLite's error code.
    await page.fill("#sql", "DELETE FROM orders");
    await page.keyboard.press("Control+Enter");
    await page.waitForSelector("body[data-ran='2']");
    assert.match(await page.locator("#error").textContent() ?? "", /^SQLITE_READONLY: /);

    // The writer adds a table and syncs: the page moves to sequence 2 and lists it, with no reload.
    await sqliteCli(
      db,
      "CREATE TABLE refunds (id INTEGER PRIMARY KEY, amount REAL); INSERT INTO refunds VALUES (1, 9.5);",
    );
    await sync();
    await page.waitForSelector("body[data-sequence='2']", { timeout: 30_000 });
    await page.waitForFunction("document.querySelectorAll('#tables li').length === 4", null, {
      timeout: 30_000,
    });
    assert.deepEqual(await page.locator("#tables li button").allTextContents(), [
      "big_orders",
      "customers",
      "orders",
      "refunds",
    ]);
    await page.click("#tables li button:text('refunds')");
    await page.waitForSelector("body[data-ran='3']");
    assert.deepEqual(await page.locator("#results td").allTextContents(), ["1", "9.5"]);
    assert.match(await page.locator("#lag").textContent() ?? "", /^≤ \d/);

    await page.fill(
      "#sql",
      "SELECT c.name, c.city, count(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer GROUP BY c.id",
    );
    await page.click("#run");
    await page.waitForSelector("body[data-ran='4']");
    await mkdir(OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: join(OUTPUT_DIR, "example-page.png"), fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
