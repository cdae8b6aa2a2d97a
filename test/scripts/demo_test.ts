import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runScript } from "../_helpers/run.ts";

describe("scripts/demo.ts", () => {
  it("stores a database, re-stores it after a one-row change uploading few chunks, and restores it byte for byte", async () => {
    const result = await runScript("scripts/demo.ts", []);
    assert.equal(result.code, 0, result.stderr);
    const stored = /stored in .*: (\d+)\/(\d+) chunks uploaded/.exec(result.stdout);
    const again = /stored again: (\d+)\/(\d+) chunks uploaded/.exec(result.stdout);
    assert.ok(stored && again, result.stdout);
    assert.equal(stored[1], stored[2], "the first store uploads every chunk");
    assert.ok(Number(again[1]) >= 1 && Number(again[1]) <= 3, `a one-row change uploaded ${again[1]} chunks`);
    const hashes = [...result.stdout.matchAll(/sha256 ([0-9a-f]{64})/g)].map((m) => m[1]);
    assert.equal(hashes.length, 2);
    assert.equal(hashes[0], hashes[1]);
    assert.match(result.stdout, /demo ok: byte-identical, 20000 rows/);
  });
});
