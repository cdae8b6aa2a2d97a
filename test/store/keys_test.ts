import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join, relative, resolve } from "node:path";
import fc from "fast-check";
import { TesseraError } from "../../src/errors.ts";
import { checkKey, checkPrefix, compareKeys } from "../../src/store/keys.ts";

function utf8Compare(a: string, b: string): number {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  }
  return x.length - y.length;
}

function accepts(key: string): boolean {
  try {
    checkKey(key);
    return true;
  } catch (error) {
    assert.ok(error instanceof TesseraError && error.code === "INVALID_KEY", String(error));
    return false;
  }
}

describe("store keys", () => {
  it("compareKeys() orders any two strings as their UTF-8 bytes compare", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (a, b) => {
        assert.equal(Math.sign(compareKeys(a, b)), Math.sign(utf8Compare(a, b)));
      }),
      { numRuns: 2000 },
    );
    assert.ok(compareKeys("\uffff", "😀") < 0, "U+FFFF sorts before U+1F600 in UTF-8");
  });

  it("checkKey() never accepts a key that would leave a directory store's root", () => {
    const root = resolve("/srv/store");
    const segment = fc.oneof(
      fc.constantFrom(".", "..", "", "...", ".tessera-tmp", "a\\b", "\0", "\u007f"),
      fc.string({ unit: "grapheme", maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.boolean(), (segments, absolute) => {
        const key = (absolute ? "/" : "") + segments.join("/");
        if (!accepts(key)) return;
        const path = join(root, ...key.split("/"));
        const rel = relative(root, path);
        assert.ok(
          rel !== "" && rel !== ".." && !rel.startsWith("../") && !rel.startsWith("/"),
          `key ${JSON.stringify(key)} escapes`,
        );
        assert.equal(rel, key, "the file path mirrors the key");
      }),
      { numRuns: 3000 },
    );
  });

  it("checkKey() names the key and the rule it breaks", () => {
    assert.throws(() => checkKey("a/../b"), {
      code: "INVALID_KEY",
      message: `Invalid key "a/../b": a key cannot hold '.' or '..' segments`,
    });
    assert.throws(() => checkKey("x\0y"), /control characters such as NUL/);
    assert.throws(() => checkKey("é".repeat(513)), /at most 1024 UTF-8 bytes/);
    assert.throws(() => checkKey("a/" + "b".repeat(256)), /segment is at most 255 UTF-8 bytes/);
    checkKey("chunks/ab/" + "c".repeat(64));
    checkKey("é/日本/😀 +%!()");
  });

  it("checkPrefix() accepts empty prefixes, trailing slashes and partial names, and rejects escapes", () => {
    for (const ok of ["", "a/", "a/b", "a/b/", "a/.", "a/.."]) checkPrefix(ok);
    for (const bad of ["/", "/a", "../", "a//", "a/../", "x\0"]) {
      assert.throws(() => checkPrefix(bad), { code: "INVALID_KEY" }, bad);
    }
  });
});
