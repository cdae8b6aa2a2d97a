import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { TesseraError } from "../../src/errors.ts";
import { decodeManifest, encodeManifest } from "../../src/manifest/codec.ts";
import { encodeBody } from "../../src/manifest/_body.ts";
import type { Manifest } from "../../src/manifest/types.ts";
import { rleFrame } from "../chunk/_frames.ts";
import { randomBytes } from "../chunk/_random.ts";
import { manifestArb } from "./_arbitrary.ts";

const WHAT = "dbs/app/manifests/0000000000000001";
const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

function small(overrides: Partial<Manifest> = {}): Manifest {
  return {
    identity: { name: "app", hostname: "", sourcePath: "/srv/app.db" },
    sequence: 3,
    createdMs: 1_700_000_000_000,
    sourceMtimeMs: -5,
    pageSize: 4096,
    imageLength: 3 * 4096,
    chunkSize: 4096,
    imageSha256: randomBytes(32, 1),
    chunk0: randomBytes(4096, 2),
    chunks: { kind: "inline", ids: [randomBytes(32, 3), new Uint8Array(32)] },
    ...overrides,
  };
}

/** A manifest object around `body` with a correct SHA-256 trailer and whatever header fields are given. */
function envelope(
  stored: Uint8Array,
  fields: { codec?: number; bodyLength?: number; version?: number } = {},
) {
  const out = new Uint8Array(48 + stored.length);
  const view = new DataView(out.buffer);
  out.set([0x54, 0x53, 0x4d, 0x46, fields.version ?? 1, fields.codec ?? 0]);
  view.setUint32(8, fields.bodyLength ?? stored.length, true);
  view.setUint32(12, stored.length, true);
  out.set(stored, 16);
  out.set(sha256(out.subarray(0, 16 + stored.length)), 16 + stored.length);
  return out;
}

async function rejects(bytes: Uint8Array, message: RegExp | string): Promise<void> {
  await assert.rejects(decodeManifest(bytes, { what: WHAT }), (error) => {
    assert.ok(error instanceof TesseraError, String(error));
    assert.equal(error.code, "CORRUPT_MANIFEST");
    const prefix = `Cannot decode manifest "${WHAT}": `;
    assert.ok(error.message.startsWith(prefix), error.message);
    if (typeof message === "string") assert.equal(error.message, prefix + message);
    else assert.match(error.message, message);
    return true;
  });
}

describe("manifest codec", () => {
  it("decodeManifest() returns what encodeManifest() stored, for any manifest and codec", async () => {
    await fc.assert(
      fc.asyncProperty(manifestArb, fc.constantFrom("auto", "none", "zstd" as const), async (m, codec) => {
        const bytes = await encodeManifest(m, { codec });
        if (codec !== "auto") assert.equal(bytes[5], codec === "zstd" ? 1 : 0);
        assert.deepEqual(await decodeManifest(bytes), m);
      }),
      { numRuns: 150 },
    );
  });

  it("encodeManifest() lays the bytes out as FORMAT.md says", async () => {
    const m = small({ chunk0: new Uint8Array(4096).fill(1) });
    const text = (s: string) => [...u16(new TextEncoder().encode(s).length), ...new TextEncoder().encode(s)];
    const body = Uint8Array.of(
      ...text("app"),
      ...text(""),
      ...text("/srv/app.db"),
      ...u64(3n),
      ...u64(1_700_000_000_000n),
      ...u64(2n ** 64n - 5n),
      ...u32(4096),
      ...u64(12288n),
      ...u32(4096),
      ...m.imageSha256,
      ...u32(4096),
      ...m.chunk0,
      0,
      ...u32(2),
      ...(m.chunks.kind === "inline" ? m.chunks.ids.flatMap((id) => [...id]) : []),
    );
    const expected = Uint8Array.of(
      0x54,
      0x53,
      0x4d,
      0x46,
      1,
      0,
      0,
      0,
      ...u32(body.length),
      ...u32(body.length),
      ...body,
    );
    const encoded = await encodeManifest(m, { codec: "none" });
    assert.deepEqual(encoded, Uint8Array.of(...expected, ...sha256(expected)));
    assert.equal(encoded.length, 48 + body.length);
    const compressed = await encodeManifest(m);
    assert.equal(compressed[5], 1, "auto compresses a body of repeated bytes");
    assert.equal(new DataView(compressed.buffer).getUint32(8, true), body.length);
  });

  it("decodeManifest() rejects any flipped byte, truncation or appended byte", async () => {
    const objects = await Promise.all(
      [small(), small({ chunk0: new Uint8Array(4096) })].flatMap((m) => [
        encodeManifest(m, { codec: "none" }),
        encodeManifest(m, { codec: "zstd" }),
      ]),
    );
    for (const object of objects) {
      for (let at = 0; at < object.length; at++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const bad = object.slice();
          bad[at] = (bad[at] as number) ^ mask;
          await rejects(bad, /./);
        }
        await rejects(object.subarray(0, at), /./);
      }
      await rejects(concat(object, [0]), /the object is \d+ bytes, but its header says \d+/);
    }
    await fc.assert(
      fc.asyncProperty(
        manifestArb,
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(2),
        async (m, n, v, kind) => {
          const object = await encodeManifest(m, { codec: n % 2 ? "zstd" : "none" });
          const at = n % object.length;
          const bad = kind === 0 ? object.slice() : kind === 1 ? object.subarray(0, at) : concat(object, [v]);
          if (kind === 0) bad[at] = (bad[at] as number) ^ v;
          await rejects(bad, /./);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("decodeManifest() says which format version it does not support", async () => {
    const object = await encodeManifest(small());
    object[4] = 9;
    await rejects(object, "format version 9 is not supported by this Tessera; upgrade it");
  });

  it("decodeManifest() rejects a 100-byte object claiming a 4 GiB body before allocating it", async () => {
    const object = envelope(new Uint8Array(52), { bodyLength: 0xffffffff, codec: 1 });
    assert.equal(object.length, 100);
    await rejects(object, "the body length 4294967295 is over the 16 MiB limit");
    const storedClaim = object.slice();
    new DataView(storedClaim.buffer).setUint32(8, 1000, true);
    new DataView(storedClaim.buffer).setUint32(12, 0xffffffff, true);
    await rejects(storedClaim, "the object is 100 bytes, but its header says 4294967343");
  });

  it("decodeManifest() stops decompressing one byte past the body length", async () => {
    // 32 RLE blocks of 128 KiB: 4 MiB from 134 bytes, claimed as a 1000-byte body.
    await rejects(
      envelope(rleFrame(0, 131072, 32), { codec: 1, bodyLength: 1000 }),
      /zstd output exceeds 1000 bytes/,
    );
  });

  it("decodeManifest() checks every field rule and that the body ends exactly", async () => {
    const cases: [Partial<Manifest>, RegExp][] = [
      [
        { identity: { name: "a/b", hostname: "", sourcePath: "" } },
        /identity.name "a\/b" is not a chosen or derived/,
      ],
      [
        { identity: { name: "app", hostname: "h", sourcePath: "" } },
        /identity.hostname must be empty for a chosen name/,
      ],
      [{ sequence: 0 }, /sequence 0 is not from 1 to 2\^53 - 1/],
      [{ sequence: 2 ** 53 }, /sequence 9007199254740992 is outside the safe integer range/],
      [{ createdMs: -(2 ** 53) }, /createdMs -9007199254740992 is outside the safe integer range/],
      [{ pageSize: 1000 }, /pageSize 1000 is not a power of two from 512 to 65536/],
      [{ chunkSize: 2048 }, /chunkSize 2048 is not a power of two from 4096 to 1048576/],
      [{ pageSize: 8192, imageLength: 16384 }, /chunkSize 4096 .* ≥ pageSize/],
      [{ imageLength: 3 * 4096 + 512 }, /imageLength 12800 is not a multiple of pageSize/],
      [
        { imageLength: 2 ** 48 + 4096 },
        /imageLength 281474976714752 is not a multiple of pageSize from 0 to 2\^48/,
      ],
      [{ chunk0: new Uint8Array(100) }, /chunk0 is 100 bytes, not min\(chunkSize, imageLength\) = 4096/],
      [{ chunks: { kind: "inline", ids: [new Uint8Array(32)] } }, /chunks.ids lists 1 ids, not 2/],
      [
        { chunks: { kind: "indexed", count: 2, fanout: 32, indexIds: [new Uint8Array(32)] } },
        /fanout 32 is not a power/,
      ],
      [
        { chunks: { kind: "indexed", count: 2, fanout: 64, indexIds: [] } },
        /chunks.indexIds lists 0 ids, not 1/,
      ],
      [
        { chunks: { kind: "indexed", count: 1, fanout: 64, indexIds: [new Uint8Array(32)] } },
        /chunks.count is 1, not 2/,
      ],
    ];
    for (const [overrides, message] of cases) {
      const m = small(overrides);
      await assert.rejects(encodeManifest(m), { message: /^Invalid manifest: / }, String(message));
      await rejects(envelope(encodeBody(m)), message);
    }
    const body = encodeBody(small());
    await rejects(envelope(concat(body, [0])), "the body has 1 bytes after its end");
    await rejects(
      envelope(body.subarray(0, body.length - 1)),
      /the body ends inside ids \(64 bytes claimed, 63 left\)/,
    );
    await rejects(envelope(body.subarray(0, 20)), /the body ends inside sequence/);
    const kind = body.slice();
    kind[body.length - 64 - 5] = 2;
    await rejects(envelope(kind), "unknown listKind 2");
    const badUtf8 = encodeBody(small({ identity: { name: "app", hostname: "", sourcePath: "/é" } }));
    badUtf8[2 + 3 + 2 + 2 + 1] = 0xff;
    await rejects(envelope(badUtf8), "sourcePath is not valid UTF-8");
    const long = encodeBody(small({ identity: { name: "app", hostname: "", sourcePath: "a".repeat(4097) } }));
    await rejects(envelope(long), /identity.sourcePath is over 4096 bytes/);
  });

  it("encodeManifest() names the field a bad manifest breaks, with TypeError or RangeError", async () => {
    const bad = (overrides: object) => small(overrides as Partial<Manifest>);
    await assert.rejects(encodeManifest(bad({ sequence: 1.5 })), {
      name: "RangeError",
      message: /sequence 1.5 is not a safe/,
    });
    await assert.rejects(encodeManifest(bad({ sequence: "1" })), {
      name: "TypeError",
      message: /sequence must be a number/,
    });
    await assert.rejects(
      encodeManifest(bad({ identity: { name: "app", hostname: "", sourcePath: "\ud800" } })),
      {
        name: "TypeError",
        message: /identity.sourcePath must be well-formed Unicode/,
      },
    );
    await assert.rejects(
      encodeManifest(bad({ imageSha256: new Uint8Array(31) })),
      /imageSha256 is not 32 bytes/,
    );
    await assert.rejects(encodeManifest(bad({ chunk0: [1] })), {
      name: "TypeError",
      message: /chunk0 must be a Uint8Array/,
    });
    await assert.rejects(encodeManifest(small(), { codec: "lz4" as "none" }), /Unknown codec "lz4"/);
    const count = 600_000;
    const huge = small({
      imageLength: (count + 1) * 4096,
      chunks: { kind: "inline", ids: Array.from({ length: count }, () => new Uint8Array(32)) },
    });
    await assert.rejects(encodeManifest(huge), {
      name: "RangeError",
      message: /over 16 MiB; list chunks indexed/,
    });
    const tooMany = small({
      imageLength: 2 ** 45,
      chunks: { kind: "indexed", count: 2 ** 33 - 1, fanout: 32768, indexIds: [] },
    });
    await assert.rejects(encodeManifest(tooMany), /imageLength makes 8589934591 chunks, more than 2\^32 - 1/);
  });
});

function concat(a: Uint8Array, b: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
function u16(n: number): number[] {
  return [n & 0xff, n >> 8];
}
function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
}
function u64(n: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
}
