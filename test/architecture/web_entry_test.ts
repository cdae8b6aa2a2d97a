/**
 * The browser entry point (`src/web.ts`) bundles for the browser platform: nothing in its import closure is
 * a `node:` module. esbuild comes from npm, so bundling downloads nothing at test time.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { ROOT } from "../_helpers/run.ts";

interface Built {
  code: number;
  stderr: string;
  meta?: {
    inputs: Record<string, { imports: { path: string; external?: boolean }[] }>;
    outputs: Record<string, { exports: string[] }>;
  };
}

async function bundleForBrowser(entry: string): Promise<Built> {
  const dir = await mkdtemp(join(tmpdir(), "tessera-web-"));
  try {
    const out = join(dir, "bundle.js");
    const metafile = join(dir, "meta.json");
    const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        join(ROOT, "node_modules/.bin/esbuild"),
        [
          entry,
          "--bundle",
          "--platform=browser",
          "--format=esm",
          `--outfile=${out}`,
          `--metafile=${metafile}`,
        ],
        { cwd: ROOT, env: { PATH: process.env.PATH ?? "", NO_COLOR: "1" } },
        (error, _stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }),
      );
    });
    if (code !== 0) return { code, stderr };
    return { code, stderr, meta: JSON.parse(await readFile(metafile, "utf8")) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the browser entry point", () => {
  it("bundles for the browser with no node: module in its import closure", async () => {
    const built = await bundleForBrowser("src/web.ts");
    assert.equal(built.code, 0, built.stderr);
    const meta = built.meta!;
    const nodeImports = Object.entries(meta.inputs).flatMap(([file, input]) =>
      input.imports.filter((i) => i.path.startsWith("node:") || i.external).map((i) => `${file} -> ${i.path}`)
    );
    assert.deepEqual(nodeImports, []);
    const sources = Object.keys(meta.inputs).filter((f) => f.startsWith("src/"));
    for (const file of ["src/replica/open_core.ts", "src/replica/wasm.ts", "src/manifest/catalog.ts"]) {
      assert.ok(sources.includes(file), `the bundle holds ${file}`);
    }
    for (const file of ["src/replica/native.ts", "src/store/local.ts", "src/chunk/directory_cache.ts"]) {
      assert.ok(!sources.includes(file), `the bundle leaves out ${file}`);
    }
    const exports = Object.values(meta.outputs)[0]?.exports ?? [];
    for (
      const name of ["openReplica", "S3Store", "HttpStore", "MemoryStore", "resolveSnapshot", "readImage"]
    ) {
      assert.ok(exports.includes(name), `web.ts exports ${name}`);
    }
  });

  it("the same bundling refuses a module that imports node: (the check can fail)", async () => {
    const built = await bundleForBrowser("src/store/local.ts");
    assert.notEqual(built.code, 0);
    assert.match(built.stderr, /node:(fs\/promises|path|crypto)/);
  });
});
