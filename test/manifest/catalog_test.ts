import assert from "node:assert/strict";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { toHex } from "../../src/bytes.ts";
import type { TesseraError } from "../../src/errors.ts";
import {
  findSnapshot,
  hasPointer,
  listDatabases,
  listHistory,
  listManifests,
  listSnapshots,
  loadAt,
  loadLatest,
  loadSequence,
  nextSequence,
  pollPointer,
  readPointer,
  resolveSnapshot,
} from "../../src/manifest/catalog.ts";
import { encodeManifest, encodePointer } from "../../src/manifest/codec.ts";
import { manifestKey, pointerKey } from "../../src/manifest/keys.ts";
import { HttpStore } from "../../src/store/http.ts";
import { LocalStore } from "../../src/store/local.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { rejectsWithCode } from "../_helpers/assert.ts";
import { makeImage, publishImage } from "../_helpers/publish.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const image = (seed: number) => makeImage(3 * 4096, { chunkSize: 4096, seed });

/** Publishes snapshot `sequence` of `name` taken at `createdMs`; the pointer moves unless told not to. */
async function publishAt(
  store: BlobStore,
  name: string,
  sequence: number,
  createdMs: number,
  options: { pointer?: boolean } = {},
): Promise<void> {
  const { manifest } = await publishImage(store, image(sequence), {
    name,
    sequence,
    chunkSize: 4096,
    skipPointer: true,
  });
  const manifestBytes = await encodeManifest({ ...manifest, createdMs });
  await store.put(manifestKey(name, sequence), manifestBytes);
  if (options.pointer === false) return;
  const manifestSha256 = new Uint8Array(
    await crypto.subtle.digest("SHA-256", manifestBytes as Uint8Array<ArrayBuffer>),
  );
  await store.put(
    pointerKey(name),
    await encodePointer({ sequence, manifestSha256, createdMs, writer: "test" }),
  );
}

/** A store at a port nothing listens on: every call fails as an endpoint that is down does. */
async function unreachableStore(): Promise<HttpStore> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return new HttpStore(`http://127.0.0.1:${port}/backups`, { maxAttempts: 1 });
}

describe("the manifest catalogue", () => {
  let dir: string;
  let store: LocalStore;
  let stores = 0;
  const newStore = () => new LocalStore(join(dir, `store-${++stores}`), { durable: false });

  before(async () => {
    dir = await makeTempDir("manifest-catalog");
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

  it("readPointer() reads a pointer, answers undefined without one, and names key and store when damaged", async () => {
    const memory = new MemoryStore();
    assert.equal(await readPointer(memory, "app"), undefined);
    assert.equal(await hasPointer(memory, "app"), false);
    const { manifestBytes } = await publishImage(memory, image(10), {
      name: "app",
      sequence: 4,
      chunkSize: 4096,
    });
    const pointer = await readPointer(memory, "app");
    assert.equal(pointer?.sequence, 4);
    assert.equal(pointer?.writer, "test");
    assert.deepEqual(
      pointer?.manifestSha256,
      new Uint8Array(await crypto.subtle.digest("SHA-256", manifestBytes as Uint8Array<ArrayBuffer>)),
    );
    assert.equal(await hasPointer(memory, "app"), true);
    await memory.put(pointerKey("app"), new Uint8Array(10));
    await rejectsWithCode(
      readPointer(memory, "app"),
      "CORRUPT_POINTER",
      /^Cannot decode pointer "dbs\/app\/pointer in memory": the object is 10 bytes/,
    );
    await assert.rejects(readPointer(memory, "not a name"), RangeError);
  });

  it("pollPointer() answers not_modified while the pointer's ETag is unchanged", async () => {
    const memory = new MemoryStore();
    assert.deepEqual(await pollPointer(memory, "polled"), { status: "not_found" });
    await publishImage(memory, image(11), { name: "polled", sequence: 1, chunkSize: 4096 });
    const first = await pollPointer(memory, "polled");
    assert.equal(first.status, "ok");
    if (first.status !== "ok") return;
    assert.equal(first.pointer.sequence, 1);
    assert.deepEqual(await pollPointer(memory, "polled", { etag: first.etag }), { status: "not_modified" });
    await publishImage(memory, image(12), { name: "polled", sequence: 2, chunkSize: 4096 });
    const second = await pollPointer(memory, "polled", { etag: first.etag });
    assert.equal(second.status === "ok" && second.pointer.sequence, 2);
  });

  it("nextSequence() is one past every store's pointer, and steps over manifests without a pointer", async () => {
    const a = new MemoryStore();
    const b = new MemoryStore();
    assert.equal(await nextSequence([a, b], "app"), 1);
    await publishImage(a, image(13), { name: "app", sequence: 3, chunkSize: 4096 });
    await publishImage(b, image(14), { name: "app", sequence: 5, chunkSize: 4096 });
    assert.equal(await nextSequence([a, b], "app"), 6, "past the newer of the two pointers");
    // Publishes that never reached their pointer: 6 in one store, 7 in the other. Their sequences are taken.
    await publishImage(a, image(15), { name: "app", sequence: 6, chunkSize: 4096, skipPointer: true });
    await publishImage(b, image(16), { name: "app", sequence: 7, chunkSize: 4096, skipPointer: true });
    assert.equal(await nextSequence([a, b], "app"), 8);
    assert.equal(
      await nextSequence([a], "app"),
      4,
      "only a manifest at the very next sequence is stepped over",
    );
    await publishImage(a, image(17), { name: "app", sequence: 4, chunkSize: 4096, skipPointer: true });
    assert.equal(await nextSequence([a], "app"), 5);
    // Pointers the caller read already are used as given, and `after` counts too.
    assert.equal(await nextSequence([a, b], "app", { pointers: [undefined, undefined] }), 1);
    assert.equal(await nextSequence([a, b], "app", { after: 9 }), 10);
    assert.equal(await nextSequence([], "app", { after: 2 }), 3);
  });

  it("nextSequence() gives up with CONFLICT after 1000 manifests without a pointer", async () => {
    const memory = new MemoryStore();
    await publishImage(memory, image(18), { name: "crowded", sequence: 1, chunkSize: 4096 });
    for (let s = 2; s <= 1001; s++) await memory.put(manifestKey("crowded", s), new Uint8Array(1));
    await rejectsWithCode(
      nextSequence([memory], "crowded"),
      "CONFLICT",
      'Cannot choose a sequence for "crowded": 1000 unpublished manifests lie ahead of its pointer',
    );
    await memory.delete(manifestKey("crowded", 1001));
    assert.equal(await nextSequence([memory], "crowded"), 1001);
  });

  it("listDatabases() lists valid database names, and with withPointer only those with a pointer", async () => {
    const memory = new MemoryStore();
    await publishImage(memory, image(18), { name: "beta", sequence: 1, chunkSize: 4096 });
    await publishImage(memory, image(19), { name: "alpha", sequence: 1, chunkSize: 4096, skipPointer: true });
    await memory.put("dbs/+not-a-name/pointer", new Uint8Array(1));
    assert.deepEqual(await listDatabases(memory), ["alpha", "beta"]);
    assert.deepEqual(await listDatabases(memory, { withPointer: true }), ["beta"]);
    assert.deepEqual(await listDatabases(new MemoryStore()), []);
  });

  it("listManifests() lists every database's manifests; listSnapshots() adds when each was taken", async () => {
    const memory = new MemoryStore();
    await publishAt(memory, "one", 1, 1_000);
    await publishAt(memory, "one", 2, 2_000);
    await publishAt(memory, "two", 1, 3_000);
    const all = [];
    for await (const entry of listManifests(memory)) all.push(entry);
    assert.deepEqual(all.map((e) => [e.name, e.sequence, e.key]), [
      ["one", 1, manifestKey("one", 1)],
      ["one", 2, manifestKey("one", 2)],
      ["two", 1, manifestKey("two", 1)],
    ]);
    const snapshots = await listSnapshots(memory, "one");
    assert.deepEqual(snapshots.map((s) => [s.sequence, s.createdMs, s.imageLength]), [
      [1, 1_000, 3 * 4096],
      [2, 2_000, 3 * 4096],
    ]);
  });

  it("loadAt() loads the newest snapshot taken at or before a time, and names the earliest when none is", async () => {
    const memory = new MemoryStore();
    await publishAt(memory, "timed", 1, Date.UTC(2024, 0, 1));
    await publishAt(memory, "timed", 2, Date.UTC(2024, 0, 2));
    await publishAt(memory, "timed", 3, Date.UTC(2024, 0, 3));
    assert.equal((await loadAt(memory, "timed", Date.UTC(2024, 0, 2, 12))).manifest.sequence, 2);
    assert.equal((await loadAt(memory, "timed", Date.UTC(2024, 0, 2))).manifest.sequence, 2);
    await rejectsWithCode(
      loadAt(memory, "timed", Date.UTC(2023, 11, 31)),
      "NOT_FOUND",
      'No snapshot of database "timed" in memory was taken at or before 2023-12-31T00:00:00.000Z: the ' +
        "earliest kept is from 2024-01-01T00:00:00.000Z",
    );
    await rejectsWithCode(loadAt(memory, "untimed", Date.now()), "NOT_FOUND", /run `tessera sync` first/);
  });

  describe("resolveSnapshot()", () => {
    it("takes the newest pointer of all stores, whichever store it is in; on a tie, the first store", async () => {
      const lagging = newStore();
      const current = newStore();
      await publishImage(lagging, image(20), { name: "app", sequence: 1, chunkSize: 4096 });
      await publishImage(current, image(20), { name: "app", sequence: 1, chunkSize: 4096 });
      const tie = await resolveSnapshot([current, lagging], { name: "app" });
      assert.equal(tie.store, current);
      assert.equal((await resolveSnapshot([lagging, current], { name: "app" })).store, lagging);
      await publishImage(current, image(21), { name: "app", sequence: 2, chunkSize: 4096 });
      for (const order of [[lagging, current], [current, lagging]]) {
        const resolved = await resolveSnapshot(order, { name: "app" });
        assert.equal(resolved.store, current);
        assert.equal(resolved.loaded.manifest.sequence, 2);
        assert.equal(resolved.pointer?.sequence, 2);
        assert.deepEqual(resolved.skipped, []);
      }
    });

    it("skips and reports a store that fails, and takes the snapshot of one that answers", async () => {
      const damaged = newStore();
      const down = await unreachableStore();
      const answering = newStore();
      await publishImage(damaged, image(22), { name: "app", sequence: 9, chunkSize: 4096 });
      await damaged.put(pointerKey("app"), new Uint8Array(10));
      await publishImage(answering, image(23), { name: "app", sequence: 3, chunkSize: 4096 });
      const resolved = await resolveSnapshot([damaged, down, answering], { name: "app" });
      assert.equal(resolved.store, answering);
      assert.equal(resolved.loaded.manifest.sequence, 3);
      assert.deepEqual(resolved.skipped.map((s) => s.store), [damaged, down]);
      const [corrupt, unreachable] = resolved.skipped.map((s) => s.error as TesseraError);
      assert.equal(corrupt?.code, "CORRUPT_POINTER");
      assert.match(corrupt?.message ?? "", new RegExp(`dbs/app/pointer in ${damaged.description}`));
      assert.equal(unreachable?.code, "HTTP_REQUEST_FAILED");
    });

    it("skips a store whose newest pointer names a missing or damaged manifest, for the next newest", async () => {
      const broken = newStore();
      const older = newStore();
      await publishImage(broken, image(24), { name: "app", sequence: 5, chunkSize: 4096 });
      await broken.delete(manifestKey("app", 5));
      await publishImage(older, image(25), { name: "app", sequence: 4, chunkSize: 4096 });
      const resolved = await resolveSnapshot([broken, older], { name: "app" });
      assert.equal(resolved.loaded.manifest.sequence, 4);
      assert.equal(resolved.store, older);
      assert.equal((resolved.skipped[0]?.error as TesseraError).code, "NOT_FOUND");
      assert.match((resolved.skipped[0]?.error as Error).message, /manifests\/0{15}5 is missing/);
    });

    it("throws the first failure when no store has the snapshot and any failed, and NOT_FOUND naming all when none failed", async () => {
      const empty = newStore();
      const other = newStore();
      const down = await unreachableStore();
      const damaged = newStore();
      await publishImage(damaged, image(26), { name: "app", sequence: 1, chunkSize: 4096 });
      await damaged.put(pointerKey("app"), new Uint8Array(10));
      // An empty store does not prove there is no snapshot while another store could not be asked.
      await rejectsWithCode(resolveSnapshot([empty, down], { name: "app" }), "HTTP_REQUEST_FAILED");
      await rejectsWithCode(resolveSnapshot([damaged, down], { name: "app" }), "CORRUPT_POINTER");
      await rejectsWithCode(
        resolveSnapshot([empty, other], { name: "app" }),
        "NOT_FOUND",
        `No snapshot of database "app" in ${empty.description} or ${other.description}: run \`tessera sync\` ` +
          "first, or check --hostname/--source-path/--name",
      );
      await rejectsWithCode(
        resolveSnapshot([empty], { name: "app" }, { hint: "check the source's host and path" }),
        "NOT_FOUND",
        `No snapshot of database "app" in ${empty.description}: check the source's host and path`,
      );
      const search = await findSnapshot([empty, down], { name: "app" });
      assert.equal(search.found, undefined);
      assert.equal(search.skipped[0]?.store, down);
      const none = await findSnapshot([empty, other], { name: "app" });
      assert.equal(none.found === undefined && none.missing.code, "NOT_FOUND");
      assert.deepEqual(none.skipped, []);
    });

    it("with a sequence, takes the first store holding that snapshot, skipping one that fails", async () => {
      const pruned = newStore();
      const full = newStore();
      const newer = newStore();
      const down = await unreachableStore();
      for (const s of [1, 2]) {
        await publishImage(full, image(30 + s), { name: "app", sequence: s, chunkSize: 4096 });
      }
      await publishImage(pruned, image(32), { name: "app", sequence: 2, chunkSize: 4096 });
      for (const s of [1, 2, 3]) {
        await publishImage(newer, image(30 + s), { name: "app", sequence: s, chunkSize: 4096 });
      }
      const first = await resolveSnapshot([pruned, down, full, newer], { name: "app", sequence: 1 });
      assert.equal(first.store, full, "the first store holding it, not the one with the newest pointer");
      assert.equal(first.loaded.manifest.sequence, 1);
      assert.equal(first.pointer, undefined);
      assert.deepEqual(first.skipped.map((s) => s.store), [down]);
      await rejectsWithCode(
        resolveSnapshot([pruned, full], { name: "app", sequence: 7 }),
        "NOT_FOUND",
        `Cannot load snapshot 7 of database "app": ${manifestKey("app", 7)} is missing from ` +
          `${pruned.description} and ${full.description} (a retention policy may have pruned it)`,
      );
      await rejectsWithCode(
        resolveSnapshot([pruned], { name: "app", sequence: 1 }),
        "NOT_FOUND",
        `Cannot load snapshot 1 of database "app": ${manifestKey("app", 1)} is missing from ` +
          `${pruned.description} (a retention policy may have pruned it)`,
      );
      await rejectsWithCode(
        resolveSnapshot([pruned, down], { name: "app", sequence: 1 }),
        "HTTP_REQUEST_FAILED",
      );
    });

    it("with a time, takes the newest snapshot of any store taken at or before it", async () => {
      const a = newStore();
      const b = newStore();
      await publishAt(a, "app", 1, Date.UTC(2024, 0, 1));
      await publishAt(b, "app", 1, Date.UTC(2024, 0, 1));
      await publishAt(b, "app", 2, Date.UTC(2024, 0, 2));
      await publishAt(b, "app", 3, Date.UTC(2024, 0, 3));
      const resolved = await resolveSnapshot([a, b], { name: "app", atMs: Date.UTC(2024, 0, 2, 12) });
      assert.equal(resolved.store, b);
      assert.equal(resolved.loaded.manifest.sequence, 2);
      await rejectsWithCode(
        resolveSnapshot([a, b], { name: "app", atMs: Date.UTC(2023, 0, 1) }),
        "NOT_FOUND",
        `No snapshot of database "app" in ${a.description} or ${b.description} was taken at or before ` +
          "2023-01-01T00:00:00.000Z: the earliest kept is from 2024-01-01T00:00:00.000Z",
      );
    });

    it("refuses bad selectors before asking any store", async () => {
      const memory = new MemoryStore();
      await assert.rejects(resolveSnapshot([], { name: "app" }), TypeError);
      await assert.rejects(resolveSnapshot([memory], { name: "not a name" }), RangeError);
      await assert.rejects(resolveSnapshot([memory], { name: "app", sequence: 0 }), RangeError);
      await assert.rejects(resolveSnapshot([memory], { name: "app", sequence: 1, atMs: 0 }), RangeError);
      await assert.rejects(resolveSnapshot([memory], { name: "app", atMs: Number.NaN }), RangeError);
    });

    it("rejects with the abort reason when aborted", async () => {
      const memory = new MemoryStore();
      await publishImage(memory, image(40), { name: "app", sequence: 1, chunkSize: 4096 });
      const controller = new AbortController();
      controller.abort(new Error("stop"));
      await assert.rejects(resolveSnapshot([memory], { name: "app" }, { signal: controller.signal }), /stop/);
      await assert.rejects(findSnapshot([memory], { name: "app" }, { signal: controller.signal }), /stop/);
    });
  });
});
