import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { attaches } from "../../src/replica/statements.ts";

describe("attaches()", () => {
  it("finds an ATTACH statement wherever it starts, and nothing in quotes or comments", () => {
    for (
      const sql of [
        "ATTACH 'x.db' AS x",
        "  attach database 'x.db' as x;",
        "SELECT 1; ATTACH 'x.db' AS x; SELECT 2",
        "-- a comment\nATTACH 'x.db' AS x",
        "/* a; comment */ Attach 'x.db' AS x",
      ]
    ) assert.equal(attaches(sql), true, sql);
    for (
      const sql of [
        "SELECT 'ATTACH x'",
        'SELECT "attach" FROM t',
        "SELECT 1 -- ATTACH 'x.db'",
        "/* ATTACH 'x.db' AS x */ SELECT 1",
        "SELECT attached FROM t",
        "DETACH x",
      ]
    ) assert.equal(attaches(sql), false, sql);
  });
});
