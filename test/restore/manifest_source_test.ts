import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { toHex } from "../../src/bytes.ts";
import { manifestKey, pointerKey } from "../../src/manifest/keys.ts";
import {
  listHistory,
  loadLatest,
  loadManifestFile,
  loadSequence,
} from "../../src/restore/manifest_source.ts";
import { LocalStore } from "../../src/store/local.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { makeImage, publishImage } from "../_helpers/publish.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { rejectsWithCode } from "../_helpers/assert.ts";

const image = (seed: number) => makeImage(3 * 4096, { chunkSize: 4096, seed });

describe("manifest sources", () => {
  let dir: string;
  let store: LocalStore;

  before(async () => {
    dir = await makeTempDir("manifest-source");
    store = new LocalStore(join(dir, "store"), { durable: false });
  });
  after(() => removeDir(dir));

  it("loadLatest() returns the manifest the pointer names, checked against its hash", async () => {
    const first = await publishImage(store, image(1), { name: "latest", sequence: 1, chunkSize: 4096 });
    const second = await publishImage(store, image(2), { name: "latest", sequence: 2, chunkSize: 4096 });
    const latest = await loadLatest(store, "latest");
    assert.equal(latest.key, manifestKey("latest", 2));
    assert.equal(latest.pointer.sequence, 2);
    assert.equal(latest.pointer.writer, "test");
    assert.deepEqual(latest.manifestBytes, second.manifestBytes);
    assert.deepEqual(latest.manifest, second.manifest);
    assert.notDeepEqual(latest.manifest.imageSha256, first.manifest.imageSha256);
  });

  it("loadLatest() fails with NOT_FOUND, saying what to do, when the database has no pointer", async () => {
    await rejectsWithCode(
      loadLatest(store, "nothing-here"),
      "NOT_FOUND",
      `No snapshot of database "nothing-here" in ${store.description}: run \`tessera sync\` first, or check ` +
        `--hostname/--source-path/--name`,
    );
  });

  it("loadLatest() fails with CHECKSUM_MISMATCH when the manifest is not the one the pointer hashed", async () => {
    const memory = new MemoryStore();
    await publishImage(memory, image(3), { name: "swapped", sequence: 1, chunkSize: 4096 });
    const other = await publishImage(memory, image(4), {
      name: "swapped",
      sequence: 1,
      chunkSize: 4096,
      skipPointer: true,
    });
    // A valid manifest of the right database and sequence, but not the bytes the pointer vouches for.
    await memory.put(manifestKey("swapped", 1), other.manifestBytes);
    // The expected hash is computed first: a rejection left unawaited while it is computed would be
    // reported as unhandled.
    const otherSha = toHex(
      new Uint8Array(await crypto.subtle.digest("SHA-256", other.manifestBytes as Uint8Array<ArrayBuffer>)),
    );
    await rejectsWithCode(
      loadLatest(memory, "swapped"),
      "CHECKSUM_MISMATCH",
      new RegExp(`^Cannot load manifest ${manifestKey("swapped", 1)} in memory: its SHA-256 is ${otherSha}`),
    );
  });

  it("loadLatest() fails with NOT_FOUND naming the manifest key when the pointer's manifest is gone", async () => {
    const memory = new MemoryStore();
    await publishImage(memory, image(5), { name: "pruned", sequence: 7, chunkSize: 4096 });
    await memory.delete(manifestKey("pruned", 7));
    await rejectsWithCode(
      loadLatest(memory, "pruned"),
      "NOT_FOUND",
      /dbs\/pruned\/manifests\/0{15}7 is missing/,
    );
  });

  it("loadLatest() rejects a damaged pointer with CORRUPT_POINTER", async () => {
    const memory = new MemoryStore();
    await publishImage(memory, image(6), { name: "bad-pointer", sequence: 1, chunkSize: 4096 });
    await memory.put(pointerKey("bad-pointer"), new TextEncoder().encode("not a pointer"));
    await rejectsWithCode(loadLatest(memory, "bad-pointer"), "CORRUPT_POINTER", /dbs\/bad-pointer\/pointer/);
  });

  it("loadSequence() loads one snapshot of the history, and refuses a manifest stored under another key", async () => {
    const memory = new MemoryStore();
    const one = await publishImage(memory, image(7), { name: "history", sequence: 1, chunkSize: 4096 });
    const two = await publishImage(memory, image(8), { name: "history", sequence: 2, chunkSize: 4096 });
    assert.deepEqual((await loadSequence(memory, "history", 1)).manifest, one.manifest);
    assert.equal((await loadSequence(memory, "history", 2)).key, manifestKey("history", 2));
    await rejectsWithCode(
      loadSequence(memory, "history", 3),
      "NOT_FOUND",
      /snapshot 3 of database "history"/,
    );
    await memory.put(manifestKey("history", 3), two.manifestBytes);
    await rejectsWithCode(
      loadSequence(memory, "history", 3),
      "CORRUPT_MANIFEST",
      /snapshot 2, not "history" snapshot 3/,
    );
  });

  it("listHistory() lists a database's manifests in sequence order, and no other database's", async () => {
    for (const sequence of [3, 1, 17, 2, 256]) {
      await publishImage(store, image(sequence), { name: "listed", sequence, chunkSize: 4096 });
    }
    await publishImage(store, image(9), { name: "listed-too", sequence: 5, chunkSize: 4096 });
    const history = await listHistory(store, "listed");
    assert.deepEqual(history.map((h) => h.sequence), [1, 2, 3, 17, 256]);
    assert.deepEqual(history.map((h) => h.key), [1, 2, 3, 17, 256].map((s) => manifestKey("listed", s)));
    assert.ok(history.every((h) => h.size > 48));
    assert.deepEqual(await listHistory(store, "never-synced"), []);
  });

  it("loadManifestFile() reads a manifest copied to a file, and names the file when it cannot", async () => {
    const published = await publishImage(store, image(10), { name: "copied", sequence: 4, chunkSize: 4096 });
    const path = join(dir, "manifest.bin");
    await writeFile(path, published.manifestBytes);
    const loaded = await loadManifestFile(path);
    assert.deepEqual(loaded.manifest, published.manifest);
    assert.equal(loaded.key, path);
    await rejectsWithCode(loadManifestFile(join(dir, "missing.bin")), "NOT_FOUND", /missing\.bin/);
    const damaged = published.manifestBytes.slice();
    damaged[20] = damaged[20]! ^ 1;
    await writeFile(path, damaged);
    await rejectsWithCode(loadManifestFile(path), "CORRUPT_MANIFEST", /manifest\.bin/);
  });
});
