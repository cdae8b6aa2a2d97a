import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { TesseraError } from "../../src/errors.ts";
import { decodePointer, encodePointer } from "../../src/manifest/codec.ts";
import type { Pointer } from "../../src/manifest/types.ts";
import { randomBytes } from "../chunk/_random.ts";
import { pointerArb } from "./_arbitrary.ts";

const WHAT = "dbs/app/pointer";
const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());
const pointer: Pointer = {
  sequence: 42,
  manifestSha256: randomBytes(32, 1),
  createdMs: 1_700_000_000_123,
  writer: "w1",
};

async function rejects(bytes: Uint8Array, message: RegExp | string): Promise<void> {
  await assert.rejects(decodePointer(bytes, { what: WHAT }), (error) => {
    assert.ok(error instanceof TesseraError, String(error));
    assert.equal(error.code, "CORRUPT_POINTER");
    const prefix = `Cannot decode pointer "${WHAT}": `;
    assert.ok(error.message.startsWith(prefix), error.message);
    if (typeof message === "string") assert.equal(error.message, prefix + message);
    else assert.match(error.message, message);
    return true;
  });
}

/** `bytes` with `patch` applied and the SHA-256 trailer recomputed, so only the patched field is wrong. */
function resealed(bytes: Uint8Array, patch: (view: DataView) => void): Uint8Array {
  const out = bytes.slice();
  patch(new DataView(out.buffer));
  const end = out.length - 32;
  out.set(sha256(out.subarray(0, end)), end);
  return out;
}

describe("pointer codec", () => {
  it("decodePointer() returns what encodePointer() stored, for any pointer", async () => {
    await fc.assert(
      fc.asyncProperty(
        pointerArb,
        async (p) => assert.deepEqual(await decodePointer(await encodePointer(p)), p),
      ),
      { numRuns: 300 },
    );
  });

  it("encodePointer() lays the bytes out as FORMAT.md says", async () => {
    const head = new Uint8Array(58);
    const view = new DataView(head.buffer);
    head.set([0x54, 0x53, 0x50, 0x54, 1, 0, 0, 0]);
    view.setBigUint64(8, 42n, true);
    head.set(pointer.manifestSha256, 16);
    view.setBigInt64(48, 1_700_000_000_123n, true);
    view.setUint16(56, 2, true);
    const expected = Uint8Array.of(...head, 0x77, 0x31);
    const encoded = await encodePointer(pointer);
    assert.deepEqual(encoded, Uint8Array.of(...expected, ...sha256(expected)));
    assert.equal(encoded.length, 90 + 2);
  });

  it("decodePointer() rejects every flipped byte, truncation and appended byte", async () => {
    const object = await encodePointer(pointer);
    for (let at = 0; at < object.length; at++) {
      for (const mask of [0x01, 0x10, 0xff]) {
        const bad = object.slice();
        bad[at] = (bad[at] as number) ^ mask;
        await rejects(bad, /./);
      }
      await rejects(object.subarray(0, at), /./);
    }
    await rejects(Uint8Array.of(...object, 0), "the object is 93 bytes, but its writer length says 92");
    await fc.assert(
      fc.asyncProperty(
        pointerArb,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(2),
        async (p, n, v, kind) => {
          const object = await encodePointer(p);
          const at = n % object.length;
          const bad = kind === 0
            ? object.slice()
            : kind === 1
            ? object.subarray(0, at)
            : Uint8Array.of(...object, v);
          if (kind === 0) bad[at] = (bad[at] as number) ^ v;
          await rejects(bad, /./);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("decodePointer() names the rule a well-sealed but invalid pointer breaks", async () => {
    const object = await encodePointer(pointer);
    await rejects(new Uint8Array(89), "the object is 89 bytes, shorter than the 90-byte minimum");
    await rejects(
      resealed(object, (v) => v.setUint8(4, 2)),
      "format version 2 is not supported by this Tessera; upgrade it",
    );
    await rejects(resealed(object, (v) => v.setUint8(0, 0)), "the object does not start with the magic TSPT");
    await rejects(resealed(object, (v) => v.setUint8(7, 1)), "the reserved header bytes are not zero");
    await rejects(
      resealed(object, (v) => v.setBigUint64(8, 0n, true)),
      "sequence 0 is not from 1 to 2^53 - 1",
    );
    await rejects(
      resealed(object, (v) => v.setBigInt64(48, -(2n ** 60n), true)),
      "createdMs -1152921504606846976 is outside the safe integer range",
    );
    await rejects(resealed(object, (v) => v.setUint8(58, 0xc3)), "the writer id is not valid UTF-8");
    const long = new Uint8Array(90 + 300);
    long.set(object.subarray(0, 56));
    new DataView(long.buffer).setUint16(56, 300, true);
    await rejects(long, "the writer length 300 is over 255");
  });

  it("encodePointer() names the field a bad pointer breaks", async () => {
    const bad = (overrides: object) => encodePointer({ ...pointer, ...overrides } as Pointer);
    await assert.rejects(bad({ sequence: 0 }), {
      name: "RangeError",
      message: /^Invalid pointer: sequence 0/,
    });
    await assert.rejects(bad({ createdMs: 0.5 }), {
      name: "RangeError",
      message: /createdMs 0.5 is not a safe integer/,
    });
    await assert.rejects(bad({ manifestSha256: new Uint8Array(16) }), /manifestSha256 must be 32 bytes/);
    await assert.rejects(bad({ writer: "é".repeat(128) }), {
      name: "RangeError",
      message: /writer is 256 bytes, over 255/,
    });
    await assert.rejects(bad({ writer: "\udc00" }), {
      name: "TypeError",
      message: /writer must be a well-formed string/,
    });
  });
});
