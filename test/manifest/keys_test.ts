import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { idToHex } from "../../src/chunk/ids.ts";
import {
  chunkKey,
  databasePrefix,
  DATABASES_PREFIX,
  manifestKey,
  manifestsPrefix,
  parseChunkKey,
  parseManifestKey,
  pointerKey,
} from "../../src/manifest/keys.ts";
import { checkKey } from "../../src/store/keys.ts";
import { DERIVED_NAMES } from "./_arbitrary.ts";

const sequence = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const name = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/),
  fc.constantFrom(...DERIVED_NAMES),
);

describe("store key layout", () => {
  it("chunkKey() files a chunk under its first two hex digits, and parseChunkKey() reads it back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (id) => {
        const hex = idToHex(id);
        const key = chunkKey(id);
        assert.equal(key, `chunks/${hex.slice(0, 2)}/${hex}`);
        checkKey(key);
        assert.deepEqual(parseChunkKey(key), id);
      }),
    );
    assert.throws(() => chunkKey(new Uint8Array(31)), TypeError);
  });

  it("parseChunkKey() returns undefined for anything else", () => {
    const hex = "ab".repeat(32);
    for (
      const key of [
        `chunks/ac/${hex}`,
        `chunks/AB/${hex.toUpperCase()}`,
        `chunks/ab/${hex}/x`,
        `chunks/${hex}`,
        `x/chunks/ab/${hex}`,
      ]
    ) {
      assert.equal(parseChunkKey(key), undefined, key);
    }
  });

  it("manifestKey() writes 16 hex digits, so key order is sequence order", () => {
    assert.equal(manifestKey("app", 26), "dbs/app/manifests/000000000000001a");
    assert.equal(manifestKey("app", Number.MAX_SAFE_INTEGER), "dbs/app/manifests/001fffffffffffff");
    fc.assert(
      fc.property(name, sequence, sequence, (n, a, b) => {
        const [x, y] = [manifestKey(n, a), manifestKey(n, b)];
        assert.equal(Math.sign(x < y ? -1 : x > y ? 1 : 0), Math.sign(a - b));
        assert.ok(x.startsWith(manifestsPrefix(n)));
        checkKey(x);
        assert.deepEqual(parseManifestKey(x), { name: n, sequence: a });
      }),
      { numRuns: 500 },
    );
  });

  it("parseManifestKey() returns undefined for anything but a manifest key with a valid sequence and name", () => {
    for (
      const key of [
        "dbs/app/manifests/0000000000000000",
        "dbs/app/manifests/0020000000000000",
        "dbs/app/manifests/000000000000001A",
        "dbs/app/manifests/00000000000001a",
        "dbs/app/pointer",
        "dbs/.app/manifests/0000000000000001",
        "dbs/a b/manifests/0000000000000001",
        "dbs/app/manifests/0000000000000001/x",
      ]
    ) {
      assert.equal(parseManifestKey(key), undefined, key);
    }
  });

  it("pointerKey() and the prefixes name a database's keys, and refuse names that are not database names", () => {
    assert.equal(DATABASES_PREFIX, "dbs/");
    assert.equal(pointerKey("app"), "dbs/app/pointer");
    assert.equal(databasePrefix("app"), "dbs/app/");
    assert.equal(manifestsPrefix("app"), "dbs/app/manifests/");
    for (const derived of DERIVED_NAMES) checkKey(pointerKey(derived));
    for (const bad of ["", ".", "..", "../x", "a/b", ".app", "a b", "x".repeat(201), "é"]) {
      assert.throws(() => pointerKey(bad), { name: "RangeError", message: /Invalid database name/ }, bad);
    }
    assert.throws(() => manifestKey("app", 0), RangeError);
    assert.throws(() => manifestKey("app", 2 ** 53), RangeError);
  });
});
