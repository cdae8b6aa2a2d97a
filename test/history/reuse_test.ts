import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { utimes } from "node:fs/promises";
import { join } from "node:path";
import { formatDuration, parseDuration } from "../../src/history/duration.ts";
import {
  CHUNK_REUSE_WINDOW_MS,
  ChunkUploader,
  GC_DELETE_WINDOW_MS,
  MIN_GC_GRACE_MS,
  reusable,
  REVERIFY_AFTER_MS,
} from "../../src/write/reuse.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { HeadResult, PutOptions, StoreCallOptions } from "../../src/store/types.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { mustGet } from "../_helpers/store.ts";
import { assertBytes } from "../_helpers/assert.ts";

/** A real directory store that records the puts and heads it is asked for, with their times. */
class RecordingStore extends LocalStore {
  readonly calls: { op: "put" | "head"; key: string; at: number }[] = [];
  override async put(key: string, body: Uint8Array, options?: PutOptions) {
    const result = await super.put(key, body, options);
    this.calls.push({ op: "put", key, at: performance.now() });
    return result;
  }
  override async head(key: string, options?: StoreCallOptions): Promise<HeadResult> {
    this.calls.push({ op: "head", key, at: performance.now() });
    return await super.head(key, options);
  }
}

describe("parseDuration()", () => {
  it("reads s, m, h, d and w", () => {
    assert.equal(parseDuration("90s"), 90_000);
    assert.equal(parseDuration("30m"), 1_800_000);
    assert.equal(parseDuration("12h"), 43_200_000);
    assert.equal(parseDuration("7d"), 604_800_000);
    assert.equal(parseDuration("2w"), 1_209_600_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
  });

  it("rejects anything else, naming the text", () => {
    for (const bad of ["", "7", "d", "7 d", "-1h", "7days", "1y", "1e3s", "h7"]) {
      assert.throws(
        () => parseDuration(bad),
        (e: Error) => e instanceof RangeError && e.message.includes(JSON.stringify(bad)),
      );
    }
  });

  it("reads back what formatDuration() writes", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 10_000_000 }), (seconds) => {
      assert.equal(parseDuration(formatDuration(seconds * 1000)), seconds * 1000);
    }));
  });
});

describe("the reuse rule's constants", () => {
  it("leave a writer time to publish, and outlast a collector's delete window", () => {
    assert.ok(MIN_GC_GRACE_MS > CHUNK_REUSE_WINDOW_MS);
    assert.ok(REVERIFY_AFTER_MS > GC_DELETE_WINDOW_MS);
    const now = Date.now();
    assert.equal(reusable(new Date(now - CHUNK_REUSE_WINDOW_MS + 1000), now), true);
    assert.equal(reusable(new Date(now - CHUNK_REUSE_WINDOW_MS - 1000), now), false);
    assert.equal(reusable(undefined, now), true);
  });
});

describe("ChunkUploader", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("uploader");
  });
  after(() => removeDir(dir));

  it("writes a missing chunk, relies on a recent copy, and writes an old copy again", async () => {
    const store = new RecordingStore(join(dir, "rules"));
    const uploader = new ChunkUploader();
    const body = new Uint8Array([1, 2, 3, 4]);
    let encodes = 0;
    const encoded = () => (encodes++, body);
    assert.equal(await uploader.ensure(store, "chunks/aa/new", encoded), 4);
    assert.equal(await uploader.ensure(store, "chunks/aa/new", encoded), 0);
    assert.equal(encodes, 1, "a recent copy is not even encoded again");
    assert.equal(uploader.unsettled, 0, "a chunk that was missing needs no second look");

    const old = new Date(Date.now() - CHUNK_REUSE_WINDOW_MS - 60_000);
    await utimes(join(store.root, "chunks/aa/new"), old, old);
    assert.equal(await uploader.ensure(store, "chunks/aa/new", encoded), 4);
    assert.equal(uploader.unsettled, 1);
    const head = await store.head("chunks/aa/new");
    assert.ok(head.status === "ok" && Date.now() - head.lastModified!.getTime() < 60_000, "renewed");
    assert.equal(await uploader.settle(), 0, "still there: nothing written again");
    assert.equal(uploader.unsettled, 0);
  });

  it("settle() looks again only after REVERIFY_AFTER_MS, and writes back a chunk a collector deleted", async () => {
    const store = new RecordingStore(join(dir, "deleted"));
    const key = "chunks/bb/victim";
    const body = new Uint8Array([9, 8, 7]);
    await store.put(key, body);
    const old = new Date(Date.now() - 3 * 24 * 3_600_000);
    await utimes(join(store.root, key), old, old);
    const uploader = new ChunkUploader();
    assert.equal(await uploader.ensure(store, key, () => body), 3);
    // A collector that had seen the old copy deletes it just after the writer's PUT.
    await store.delete(key);
    assert.equal(await uploader.settle(), 3);
    assertBytes(await mustGet(store, key), body, "the chunk written back");
    const puts = store.calls.filter((c) => c.op === "put" && c.key === key);
    const heads = store.calls.filter((c) => c.op === "head" && c.key === key);
    assert.equal(puts.length, 3, "the setup's put, the renewal, and the write-back");
    // The look that found it gone came REVERIFY_AFTER_MS after the renewal; the write-back was looked at
    // again as long after.
    assert.equal(heads.length, 3);
    assert.ok(heads[1]!.at - puts[1]!.at >= REVERIFY_AFTER_MS - 5, `${heads[1]!.at - puts[1]!.at} ms`);
    assert.ok(heads[2]!.at - puts[2]!.at >= REVERIFY_AFTER_MS - 5, `${heads[2]!.at - puts[2]!.at} ms`);
  });

  it("settle() stops waiting when its signal aborts", async () => {
    const store = new LocalStore(join(dir, "aborted"));
    await store.put("chunks/cc/x", new Uint8Array([1]));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(join(store.root, "chunks/cc/x"), old, old);
    const uploader = new ChunkUploader();
    await uploader.ensure(store, "chunks/cc/x", () => new Uint8Array([1]));
    const controller = new AbortController();
    const settling = uploader.settle({ signal: controller.signal });
    controller.abort(new Error("stop waiting"));
    await assert.rejects(settling, /stop waiting/);
  });
});
