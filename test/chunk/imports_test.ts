import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { describe, it } from "node:test";

const CHUNK_DIR = new URL("../../src/chunk/", import.meta.url);

describe("the chunk layer", () => {
  it("imports nothing from the manifest layer or above it (manifests import chunks, not the other way)", async () => {
    const files = (await readdir(CHUNK_DIR)).filter((name) => name.endsWith(".ts"));
    assert.ok(files.includes("source.ts"));
    for (const name of files) {
      const source = await readFile(new URL(name, CHUNK_DIR), "utf8");
      for (const [, path] of source.matchAll(/^(?:import|export)[^"]*"([^"]+)";$/gm)) {
        assert.ok(
          !path!.startsWith("../") || /^\.\.\/(bytes|errors|pool|store\/[a-z_]+)\.ts$/.test(path!),
          `${name} imports ${path}`,
        );
      }
    }
  });
});
