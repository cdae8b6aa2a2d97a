import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { md5, md5Base64, md5Hex } from "../../src/s3/md5.ts";

const encoder = new TextEncoder();

function nodeMd5(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

describe("md5", () => {
  it("md5Hex() matches the RFC 1321 test suite", () => {
    const suite: Array<[string, string]> = [
      ["", "d41d8cd98f00b204e9800998ecf8427e"],
      ["a", "0cc175b9c0f1b6a831c399e269772661"],
      ["abc", "900150983cd24fb0d6963f7d28e17f72"],
      ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
      ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
      ["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"],
      [
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "57edf4a22be3c955ac49da2e2107b67a",
      ],
    ];
    for (const [input, expected] of suite) assert.equal(md5Hex(encoder.encode(input)), expected, input);
  });

  it("md5() returns 16 bytes", () => {
    const digest = md5(encoder.encode("abc"));
    assert.equal(digest.length, 16);
    assert.deepEqual([...digest.subarray(0, 4)], [0x90, 0x01, 0x50, 0x98]);
  });

  it("md5Base64() encodes the digest as the Content-MD5 header wants it", () => {
    assert.equal(md5Base64(new Uint8Array()), "1B2M2Y8AsgTpgAmY7PhCfg==");
    const bytes = encoder.encode("<Delete><Object><Key>a</Key></Object></Delete>");
    assert.equal(md5Base64(bytes), createHash("md5").update(bytes).digest("base64"));
  });

  it("md5Hex() agrees with node:crypto at every length around the padding boundaries", () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff);
    for (let length = 0; length <= 300; length++) {
      const bytes = data.subarray(0, length);
      assert.equal(md5Hex(bytes), nodeMd5(bytes), `length ${length}`);
    }
  });

  it("md5Hex() agrees with node:crypto for arbitrary byte arrays", () => {
    const lengths = fc.oneof(
      fc.constantFrom(0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129),
      fc.integer({ min: 0, max: 5000 }),
    );
    const bytes = lengths.chain((length) => fc.uint8Array({ minLength: length, maxLength: length }));
    fc.assert(fc.property(bytes, (input) => md5Hex(input) === nodeMd5(input)), { numRuns: 300 });
  });

  it("md5() hashes only the bytes a subarray view covers", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(), fc.nat(), (input, a, b) => {
        const start = input.length === 0 ? 0 : a % input.length;
        const end = start + (input.length === 0 ? 0 : b % (input.length - start + 1));
        const view = input.subarray(start, end);
        return md5Hex(view) === nodeMd5(view);
      }),
    );
  });

  it("md5Hex() agrees with node:crypto on several MiB", () => {
    const bytes = new Uint8Array(5 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    assert.equal(md5Hex(bytes), nodeMd5(bytes));
  });

  it("md5() rejects an argument that is not a Uint8Array", () => {
    assert.throws(() => md5("abc" as unknown as Uint8Array), TypeError);
  });
});
