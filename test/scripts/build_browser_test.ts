/**
 * scripts/build_browser.ts replaces only a bundle it wrote: it refuses any other directory and leaves it as
 * it was, swaps a new bundle in whole, and keeps the previous one when a build fails.
 */

import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildBrowser, MARKER_FILE } from "../../scripts/build_browser.ts";
import { ROOT, runScript } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const FILES = [MARKER_FILE, "sqlite3.wasm", "tessera-worker.js", "tessera.js"];

async function listing(directory: string): Promise<string[]> {
  return (await readdir(directory)).sort();
}

describe("scripts/build_browser.ts", () => {
  let dir: string;

  before(async () => {
    dir = await makeTempDir("build-browser");
  });

  after(async () => {
    await removeDir(dir);
  });

  it("buildBrowser() refuses a directory holding other files and leaves it untouched", async () => {
    const other = join(dir, "other");
    await mkdir(join(other, "keep"), { recursive: true });
    await writeFile(join(other, "notes.txt"), "mine");
    await writeFile(join(other, "tessera.js"), "mine too");
    await assert.rejects(
      buildBrowser({ out: other }),
      (error: Error) => {
        assert.match(error.message, /^Cannot build into .*other: it holds files a build did not write/);
        return true;
      },
    );
    assert.deepEqual(await listing(other), ["keep", "notes.txt", "tessera.js"]);
    assert.equal(await readFile(join(other, "notes.txt"), "utf8"), "mine");
    assert.deepEqual(await listing(dir), ["other"], "no half-built directory beside it");
  });

  it("buildBrowser() refuses the project, a directory holding it, and anything inside src/", async () => {
    for (
      const out of [ROOT, dirname(ROOT), join(ROOT, "src"), join(ROOT, "src/store"), join(ROOT, "src/new")]
    ) {
      await assert.rejects(
        buildBrowser({ out }),
        /^Error: Cannot build into .*: it (holds the project|is inside)/,
      );
    }
    await assert.rejects(readdir(join(ROOT, "src/new")), { code: "ENOENT" });
  });

  it("buildBrowser() replaces a bundle it wrote, whole, and keeps it when a build fails", async () => {
    const out = join(dir, "site", "tessera");
    const first = await buildBrowser({ out });
    assert.equal(first.directory, out);
    assert.deepEqual(await listing(out), FILES);
    await writeFile(join(out, "stale.js"), "left by hand");

    await buildBrowser({ out });
    assert.deepEqual(await listing(out), FILES, "the stale file went with the previous bundle");
    assert.deepEqual(await listing(join(dir, "site")), ["tessera"], "no staging directory left beside it");

    const before = await readFile(join(out, "tessera.js"));
    await writeFile(join(out, "stale.js"), "left by hand");
    await assert.rejects(
      buildBrowser({ out, wasm: join(dir, "no-such.wasm") }),
      /Cannot copy sqlite-wasm's binary from .*no-such\.wasm: ENOENT/,
    );
    assert.deepEqual(await listing(out), [...FILES, "stale.js"].sort(), "the previous bundle is intact");
    assert.deepEqual(await readFile(join(out, "tessera.js")), before);
    assert.deepEqual(await listing(join(dir, "site")), ["tessera"], "no half-built directory left");
  });

  it("buildBrowser() takes an empty directory, and a bundle written before the marker existed", async () => {
    const empty = join(dir, "empty");
    await mkdir(empty);
    await buildBrowser({ out: empty });
    assert.deepEqual(await listing(empty), FILES);

    const legacy = join(dir, "legacy");
    await mkdir(legacy);
    for (const name of ["tessera.js", "tessera-worker.js", "sqlite3.wasm"]) {
      await writeFile(join(legacy, name), "old");
    }
    await buildBrowser({ out: legacy });
    assert.deepEqual(await listing(legacy), FILES);
  });

  it("the command resolves --out against the caller's directory and fails in one line, exit 1", async () => {
    const caller = join(dir, "caller");
    await mkdir(caller);
    const built = await runScript("scripts/build_browser.ts", ["--out", "public/tessera"], {
      env: { INIT_CWD: caller },
    });
    assert.equal(built.code, 0, built.stderr);
    assert.deepEqual(await listing(join(caller, "public/tessera")), FILES);
    assert.match(built.stdout, /^public\/tessera\/tessera\.js {2}\d+ KiB$/m);

    await writeFile(join(caller, "mine.txt"), "mine");
    const refused = await runScript("scripts/build_browser.ts", ["--out", "."], {
      env: { INIT_CWD: caller },
    });
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `build:browser: Cannot build into ${caller}: it holds files a build did not write ` +
        `(a bundle directory holds ${MARKER_FILE}); choose a new or empty directory\n`,
    );
    assert.deepEqual(await listing(caller), ["mine.txt", "public"]);

    const usage = await runScript("scripts/build_browser.ts", ["--out="], { env: { INIT_CWD: caller } });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^build:browser: --out needs a directory\n/);
  });
});
