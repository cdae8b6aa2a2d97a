import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { assertBytes } from "../_helpers/assert.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const python = (code: string, ...args: string[]) => execFileSync("python3", ["-c", code, ...args]).toString();
const CHUNK = 65536;

/**
 * Eight bytes to XOR into `chunk` at `at` that change it while keeping its CRC-32: four chosen bytes, and
 * four solved for (CRC-32 is affine, so the bytes that cancel a change form a linear system over GF(2)).
 */
function crcPreservingChange(chunk: Uint8Array, at: number): Uint8Array {
  const delta = (e: Uint8Array) => {
    const x = chunk.slice();
    for (let i = 0; i < 8; i++) x[at + i]! ^= e[i]!;
    return (crc32(x) ^ crc32(chunk)) >>> 0;
  };
  const basis = Array.from({ length: 32 }, (_, bit) => {
    const e = new Uint8Array(8);
    e[4 + (bit >> 3)] = 1 << (bit & 7);
    return delta(e);
  });
  const pivots: ({ v: number; m: bigint } | undefined)[] = new Array(32);
  const reduce = (v: number, m: bigint) => {
    for (let b = 31; b >= 0; b--) {
      if ((v >>> b) & 1 && pivots[b]) {
        v = (v ^ pivots[b]!.v) >>> 0;
        m ^= pivots[b]!.m;
      }
    }
    return { v, m };
  };
  basis.forEach((v, i) => {
    const r = reduce(v, 1n << BigInt(i));
    if (r.v) pivots[31 - Math.clz32(r.v)] = r;
  });
  const change = new Uint8Array([0x5a, 0xa5, 0x3c, 0xc3, 0, 0, 0, 0]);
  const solved = reduce(delta(change), 0n);
  assert.equal(solved.v, 0, "the CRC-32 change can be cancelled");
  for (let bit = 0; bit < 32; bit++) {
    if ((solved.m >> BigInt(bit)) & 1n) change[4 + (bit >> 3)]! ^= 1 << (bit & 7);
  }
  return change;
}

describe("a change a linear checksum cannot see", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("crafted");
  });
  after(() => removeDir(dir));

  it("is synced: a rollback-journal update that keeps the chunk's CRC-32 still reaches the store", async () => {
    const path = join(dir, "app.db");
    const marker = new TextEncoder().encode("crafted-change-marker");
    const blob = new Uint8Array(64);
    blob.set(marker);
    python(
      `import sqlite3,sys
c=sqlite3.connect(sys.argv[1]); c.execute("PRAGMA journal_mode=DELETE")
c.execute("CREATE TABLE pad(x)")
for i in range(60): c.execute("INSERT INTO pad VALUES (randomblob(3000))")
c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)")
c.execute("INSERT INTO t VALUES (1, ?)", (bytes.fromhex(sys.argv[2]),)); c.commit(); c.close()`,
      path,
      Buffer.from(blob).toString("hex"),
    );
    const store = new MemoryStore();
    const options = { stores: [store], hostname: "h", name: "app", spoolDir: join(dir, "spool") };
    await syncDatabase(path, options);
    const file = new Uint8Array(readFileSync(path));
    const at = file.findIndex((_, i) => marker.every((b, k) => file[i + k] === b));
    const c = Math.floor(at / CHUNK);
    const chunk = file.subarray(c * CHUNK, Math.min((c + 1) * CHUNK, file.length));
    const change = crcPreservingChange(chunk, at - c * CHUNK + 32);
    const next = blob.slice();
    for (let i = 0; i < 8; i++) next[32 + i]! ^= change[i]!;
    python(
      `import sqlite3,sys
c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE t SET b=? WHERE id=1", (bytes.fromhex(sys.argv[2]),)); c.commit(); c.close()`,
      path,
      Buffer.from(next).toString("hex"),
    );
    const changed = new Uint8Array(readFileSync(path));
    assert.equal(
      crc32(changed.subarray(c * CHUNK, (c + 1) * CHUNK)),
      crc32(chunk),
      "the chunk keeps its CRC-32",
    );
    const second = await syncDatabase(path, options);
    assert.equal(second.noop, false);
    assert.ok(second.chunks.uploaded >= 1, "the changed chunk went up");
    const { manifest } = await loadLatest(store, "app");
    const out = join(dir, "restored.db");
    await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
    assertBytes(new Uint8Array(readFileSync(out)), changed, "the restored database");
  });
});
