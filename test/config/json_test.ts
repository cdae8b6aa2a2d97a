import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { findJsonError, parseJson } from "../../src/config/_json.ts";

function accepts(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const jsonText = fc.tuple(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom(undefined, 0, 1, 2, "\t"))
  .map(([value, indent]) => JSON.stringify(value, null, indent));

describe("parseJson()", () => {
  it("parses what JSON.parse parses, to the same value", () => {
    fc.assert(fc.property(jsonText, (text) => {
      const parsed = parseJson(text);
      assert.ok(parsed.ok);
      assert.deepEqual(parsed.value, JSON.parse(text));
    }));
  });

  it("finds an error exactly when JSON.parse rejects a mutated text", () => {
    const edit = fc.tuple(
      jsonText,
      fc.nat(),
      fc.constantFrom("delete", "insert", "truncate"),
      fc.constantFrom(...'{}[],:"\\ 0-1eE.+tfnul/\u0000\n\u00e9x'),
    );
    fc.assert(
      fc.property(edit, ([text, at, kind, char]) => {
        const i = text.length === 0 ? 0 : at % (text.length + 1);
        const mutated = kind === "delete"
          ? text.slice(0, i) + text.slice(i + 1)
          : kind === "insert"
          ? text.slice(0, i) + char + text.slice(i)
          : text.slice(0, i);
        assert.equal(findJsonError(mutated) === undefined, accepts(mutated), JSON.stringify(mutated));
      }),
      { numRuns: 3000 },
    );
  });

  it("reports the line and column of the first error with a reason", () => {
    const cases: [string, number, number, RegExp][] = [
      ['{"a": 1,}', 1, 9, /trailing comma/],
      ['{"a": 1\n  "b": 2}', 2, 3, /expected ',' or '}' but found '"'/],
      ["[1, 2", 1, 6, /expected ',' or '\]' but found the end of the text/],
      ['{"a": tru}', 1, 10, /expected 'true' but found '}'/],
      ["{a: 1}", 1, 2, /property name in double quotes/],
      ['{"a": "x\ty"}', 1, 9, /control character U\+0009 inside a string/],
      ['{"a": 01}', 1, 8, /expected ',' or '}' but found '1'/],
      ['{"a": 1} // note', 1, 10, /a comment \(JSON has none\) after the JSON value/],
      ["", 1, 1, /expected a value but found the end of the text/],
      ['{"a": "\\q"}', 1, 8, /invalid escape '\\q'/],
    ];
    for (const [text, line, column, problem] of cases) {
      const parsed = parseJson(text);
      assert.ok(!parsed.ok, text);
      assert.equal(parsed.line, line, text);
      assert.equal(parsed.column, column, text);
      assert.match(parsed.problem, problem);
    }
  });

  it("ignores a leading byte order mark", () => {
    assert.deepEqual(parseJson('\uFEFF{"a": 1}'), { ok: true, value: { a: 1 } });
  });
});
