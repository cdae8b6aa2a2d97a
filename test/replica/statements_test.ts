import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { splitStatements } from "../../src/replica/statements.ts";

describe("splitStatements()", () => {
  it("cuts at semicolons outside quotes and comments, and keeps an unfinished tail", () => {
    assert.deepEqual(splitStatements("SELECT ';'; -- done\nSELECT 2"), {
      statements: ["SELECT ';'"],
      rest: "-- done\nSELECT 2",
    });
    assert.deepEqual(splitStatements("SELECT 1; /* a; b */ SELECT [x;y]; SELECT 'it''s;';"), {
      statements: ["SELECT 1", "/* a; b */ SELECT [x;y]", "SELECT 'it''s;'"],
      rest: "",
    });
    assert.deepEqual(splitStatements("-- only a comment\n;;"), { statements: [], rest: "" });
    assert.deepEqual(splitStatements("SELECT 'open"), { statements: [], rest: "SELECT 'open" });
  });
});
