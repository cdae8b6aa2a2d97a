import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runScript } from "../_helpers/run.ts";

describe("scripts/demo.ts", () => {
  it("syncs a database, uploads one chunk after a one-row change, and restores it byte for byte", async () => {
    const result = await runScript("scripts/demo.ts", []);
    assert.equal(result.code, 0, result.stderr);
    const first = /first sync: sequence 1, (\d+) of (\d+) chunks uploaded/.exec(result.stdout);
    const changed = /after changing one row: sequence 2, (\d+) of (\d+) chunks uploaded/.exec(result.stdout);
    assert.ok(first && changed, result.stdout);
    assert.equal(
      Number(first[1]),
      Number(first[2]) - 1,
      "the first sync uploads every chunk but chunk 0 (inline)",
    );
    assert.equal(changed[1], "1", "a one-row change uploads one chunk");
    assert.match(result.stdout, /second sync: unchanged, nothing uploaded/);
    const hashes = [...result.stdout.matchAll(/sha256 ([0-9a-f]{64})/g)].map((m) => m[1]);
    assert.equal(hashes.length, 2);
    assert.equal(hashes[0], hashes[1]);
    assert.match(result.stdout, /replica at sequence 1: row 15000 = "note 15000 /);
    assert.match(result.stdout, /replica refreshed to sequence 2: row 15000 = "changed by the demo"/);
    assert.match(result.stdout, /demo ok: byte-identical, integrity ok, 20000 rows/);
  });
});
