import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ZERO_HEX } from "../../src/chunk/ids.ts";
import type { ChunkLocation } from "../../src/chunk/pack.ts";
import { objectBound, planRepack, REPACK_MAX_BYTES } from "../../src/write/repack.ts";

const MiB = 1024 * 1024;
const hex = (n: number) => (n + 1).toString(16).padStart(64, "0");
const pack = (n: number, packLength: number) => (offset: number, length: number): ChunkLocation => ({
  pack: new Uint8Array(32).fill(n),
  packLength,
  offset,
  length,
});

describe("planRepack()", () => {
  it("moves every chunk still used of a pack the image uses less than half of, and nothing of a full one", () => {
    const full = pack(1, 8 * MiB);
    const sparse = pack(2, 8 * MiB);
    const where = new Map<string, ChunkLocation | undefined>();
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      ids.push(hex(i));
      where.set(hex(i), full(24 + i * 80_000, 80_000));
    }
    // Three chunks of 80 KB left in an 8 MiB pack: 3% used.
    for (let i = 100; i < 103; i++) {
      ids.push(hex(i));
      where.set(hex(i), sparse(24 + i * 80_000, 80_000));
    }
    ids.push(ZERO_HEX);
    const plan = planRepack(ids, where, new Set(), 256 * MiB, 65536);
    assert.deepEqual(plan.move, [hex(100), hex(101), hex(102)]);
    assert.equal(plan.bytes, 3 * 80_000);
    assert.deepEqual([plan.objectsBefore, plan.objectsAfter], [2, 1]);
  });

  it("gathers the smallest objects once there are more than the bound allows, at most 64 MiB a publish", () => {
    // A 64 MiB image after 200 one-chunk publishes: 200 tiny packs, each wholly used.
    const where = new Map<string, ChunkLocation | undefined>();
    const ids: string[] = [];
    for (let i = 0; i < 200; i++) {
      ids.push(hex(i));
      where.set(hex(i), pack(i % 250, 30_000 + 24 + 40)(64, 30_000 + i));
    }
    const bound = objectBound(64 * MiB);
    assert.equal(bound, 32);
    const plan = planRepack(ids, where, new Set(), 64 * MiB, 65536);
    assert.equal(plan.objectsAfter, bound);
    // The smallest go first: chunk i's object holds 30000 + i bytes.
    assert.deepEqual(plan.move, ids.slice(0, 200 - bound));
    // Chunks the publish writes anyway, and chunks the store does not hold, are not planned.
    const some = planRepack(ids, where, new Set(ids.slice(0, 150)), 64 * MiB, 65536);
    assert.equal(some.objectsBefore, 50);
    assert.equal(some.move.length, 50 - bound);
  });

  it("stops at 64 MiB of moves, and counts chunks of their own object at the chunk size", () => {
    const where = new Map<string, ChunkLocation | undefined>();
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) {
      ids.push(hex(i));
      where.set(hex(i), undefined);
    }
    const plan = planRepack(ids, where, new Set(), 5000 * 65536, 65536);
    assert.equal(plan.bytes, REPACK_MAX_BYTES);
    assert.equal(plan.move.length, REPACK_MAX_BYTES / 65536);
  });
});
