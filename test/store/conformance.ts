/**
 * The behaviour every BlobStore must show (docs/STORE_CONTRACT.md), as one suite each backend's test file
 * runs against a real instance of that backend.
 *
 * @module
 */

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { BlobStore, ListItem } from "../../src/store/types.ts";
import { assertBytes, rejectsWithCode } from "../_helpers/assert.ts";
import { listAll, mustGet, pattern } from "../_helpers/store.ts";

/** A backend under test: `store` is what is checked, `writer` writes the same data (the store itself when
 * it can write; for a read-only store, the writable store it serves). */
export interface StoreFixture {
  store: BlobStore;
  writer: BlobStore;
  teardown(): Promise<void>;
}

function names(items: ListItem[]): string[] {
  return items.map((i) => (i.type === "object" ? i.key : `${i.prefix}*`));
}

async function rejectsAborted(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (error: Error) => error.name === "AbortError");
}

async function putMany(writer: BlobStore, keys: string[], concurrency = 16): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < keys.length) {
      const key = keys[next++] as string;
      await writer.put(key, new TextEncoder().encode(key));
    }
  }));
}

/** What a backend's server is known not to do, each with the reason, shown as a skipped test. */
export interface ServerQuirks {
  /** The server keeps part of a body whose upload was cut off, where S3 keeps nothing. */
  keepsPartialUploads?: string;
  /** The server loses keys nested two folders below a prefix that ends inside a folder name. */
  missesDeepPrefixes?: string;
  /** The server writes racing puts of one key into the same file, so the object can mix their bodies. */
  tearsRacingPuts?: string;
}

/** Registers the conformance suite for one backend. */
export function storeConformance(
  name: string,
  setup: () => Promise<StoreFixture>,
  quirks: ServerQuirks = {},
): void {
  describe(`${name} store conformance`, () => {
    let fx: StoreFixture;
    let store: BlobStore;
    let writer: BlobStore;
    let run = 0;
    // Each test writes under its own prefix so tests never see each other's objects.
    const ns = (label: string) => `c${++run}-${label}`;

    before(async () => {
      fx = await setup();
      store = fx.store;
      writer = fx.writer;
    });
    after(async () => {
      await fx?.teardown();
    });

    it("round-trips empty, small and multi-MiB objects byte for byte", async () => {
      const p = ns("roundtrip");
      const objects: [string, Uint8Array][] = [
        [`${p}/empty`, new Uint8Array(0)],
        [`${p}/small`, new TextEncoder().encode("hello, tessera")],
        [`${p}/large`, pattern(5 * 1024 * 1024 + 7, 1)],
      ];
      for (const [key, bytes] of objects) await writer.put(key, bytes);
      for (const [key, bytes] of objects) {
        const got = await store.get(key);
        assert.equal(got.status, "ok");
        if (got.status !== "ok") continue;
        assert.equal(got.key, key);
        assert.equal(got.size, bytes.length);
        assertBytes(got.body, bytes, key);
        const head = await store.head(key);
        assert.equal(head.status, "ok");
        if (head.status === "ok") {
          assert.equal(head.size, bytes.length);
          assert.equal(head.etag, got.etag);
        }
      }
    });

    it("round-trips keys with spaces, plus signs, percent signs and non-ASCII characters", async () => {
      const p = ns("names");
      const keys = [
        `${p}/a b`,
        `${p}/a+b`,
        `${p}/100%`,
        `${p}/é/ü`,
        `${p}/日本`,
        `${p}/emoji-😀`,
        `${p}/x=1&y=2`,
      ];
      for (const [i, key] of keys.entries()) await writer.put(key, pattern(100 + i, i));
      for (const [i, key] of keys.entries()) assert.deepEqual(await mustGet(store, key), pattern(100 + i, i));
      if (store.capabilities.list) {
        const listed = names(await listAll(store, `${p}/`));
        assert.deepEqual(listed, [...keys].sort(compareCodePoints));
      }
    });

    it("replaces an object on a second put and changes its ETag", async () => {
      const key = `${ns("replace")}/object`;
      await writer.put(key, pattern(1000, 1));
      const first = await store.head(key);
      await writer.put(key, pattern(1000, 2));
      assert.deepEqual(await mustGet(store, key), pattern(1000, 2));
      const second = await store.head(key);
      assert.ok(first.status === "ok" && second.status === "ok");
      assert.notEqual(first.etag, second.etag);
    });

    it("reads byte ranges, clamping ranges that pass the end", async () => {
      const key = `${ns("range")}/object`;
      const bytes = pattern(100_000, 3);
      await writer.put(key, bytes);
      const cases: [number, number | undefined, number, number][] = [
        [0, 10, 0, 10],
        [65_536, 4096, 65_536, 69_632],
        [99_990, undefined, 99_990, 100_000],
        [99_990, 100, 99_990, 100_000],
        [100_000, 10, 100_000, 100_000],
        [200_000, undefined, 100_000, 100_000],
        [5, 0, 5, 5],
      ];
      for (const [offset, length, start, end] of cases) {
        const got = await store.get(key, { range: { offset, length } });
        assert.equal(got.status, "ok", `range ${offset}+${length}`);
        if (got.status !== "ok") continue;
        assert.deepEqual(got.body, bytes.subarray(start, end), `range ${offset}+${length}`);
        assert.equal(got.size, bytes.length, `size reported with range ${offset}+${length}`);
      }
      await assert.rejects(store.get(key, { range: { offset: -1 } }), RangeError);
    });

    it("returns not_found for missing objects instead of throwing", async () => {
      const p = ns("missing");
      assert.deepEqual(await store.get(`${p}/nothing`), { status: "not_found" });
      assert.deepEqual(await store.head(`${p}/nothing`), { status: "not_found" });
      assert.deepEqual(await store.get(`${p}/nothing`, { range: { offset: 0, length: 5 } }), {
        status: "not_found",
      });
      if (store.capabilities.write) await store.delete(`${p}/nothing`);
    });

    it("answers not_modified to a conditional get with the current ETag only", async () => {
      const key = `${ns("conditional")}/pointer`;
      await writer.put(key, pattern(64, 4));
      const head = await store.head(key);
      assert.ok(head.status === "ok");
      const same = await store.get(key, { ifNoneMatch: head.etag });
      assert.equal(same.status, "not_modified");
      await writer.put(key, pattern(64, 5));
      const changed = await store.get(key, { ifNoneMatch: head.etag });
      assert.equal(changed.status, "ok");
      if (changed.status === "ok") assert.deepEqual(changed.body, pattern(64, 5));
    });

    it("rejects keys that are empty, absolute, escaping or hold NUL with INVALID_KEY", async () => {
      const bad = [
        "",
        "/abs",
        "../up",
        "a/../b",
        "a//b",
        "a/",
        "a/./b",
        "nul\0byte",
        "back\\slash",
        ".tessera-tmp/x",
      ];
      for (const key of bad) {
        await rejectsWithCode(store.get(key), "INVALID_KEY");
        await rejectsWithCode(store.head(key), "INVALID_KEY");
        await rejectsWithCode(writer.put(key, new Uint8Array(1)), "INVALID_KEY");
      }
      await rejectsWithCode(writer.put("x".repeat(1025), new Uint8Array(1)), "INVALID_KEY");
    });

    it("rejects calls whose signal is already aborted, writing nothing", async () => {
      const key = `${ns("abort")}/object`;
      const signal = AbortSignal.abort();
      await rejectsAborted(store.get(key, { signal }));
      await rejectsAborted(store.head(key, { signal }));
      if (store.capabilities.write) {
        await rejectsAborted(store.put(key, pattern(10, 1), { signal }));
        assert.deepEqual(await store.head(key), { status: "not_found" });
      }
    });

    const partial = { skip: quirks.keepsPartialUploads ?? false };
    it("leaves either no object or a whole one when a large put is aborted mid-flight", partial, async () => {
      if (!store.capabilities.write) return;
      const key = `${ns("abort-mid")}/object`;
      const bytes = pattern(8 * 1024 * 1024, 7);
      for (const delay of [0, 1, 5, 20]) {
        const controller = new AbortController();
        const put = store.put(key, bytes, { signal: controller.signal });
        setTimeout(() => controller.abort(), delay);
        await put.catch((error: Error) => assert.equal(error.name, "AbortError"));
        const got = await store.get(key);
        if (got.status === "ok") assertBytes(got.body, bytes, `object after an abort at ${delay} ms`);
        await store.delete(key);
      }
    });

    const racing = { skip: quirks.tearsRacingPuts ?? false };
    it("writes one whole object when many puts of the same key race", racing, async () => {
      if (!store.capabilities.write) return;
      const key = `${ns("race")}/object`;
      const bodies = Array.from({ length: 12 }, (_, i) => pattern(256 * 1024, 100 + i));
      await Promise.all(bodies.map((b) => store.put(key, b)));
      const got = await mustGet(store, key);
      assert.ok(bodies.some((b) => b.length === got.length && b.every((v, i) => v === got[i])));
      if (store.capabilities.list) {
        assert.deepEqual(names(await listAll(store, `${key.split("/")[0]}/`)), [key]);
      }
    });

    it("lists more than 1,000 keys in key order, each once", async () => {
      if (!store.capabilities.list) {
        await rejectsWithCode(listAll(store, ""), "UNSUPPORTED");
        return;
      }
      const p = ns("many");
      const keys = Array.from({ length: 1100 }, (_, i) => `${p}/k${String(i).padStart(5, "0")}`);
      await putMany(writer, keys);
      const listed = await listAll(store, `${p}/`);
      assert.deepEqual(names(listed), keys);
      for (const item of listed) {
        assert.ok(item.type === "object");
        assert.equal(item.size, new TextEncoder().encode(item.key).length);
      }
    });

    it("lists by prefix, and rolls keys up to folders with a delimiter", async () => {
      if (!store.capabilities.list) return;
      const p = ns("prefix");
      const keys = [`${p}/a/1`, `${p}/a/2`, `${p}/a-b`, `${p}/ab/x`, `${p}/b`, `${p}x`];
      await putMany(writer, keys);
      assert.deepEqual(names(await listAll(store, `${p}/`)), [
        `${p}/a-b`,
        `${p}/a/1`,
        `${p}/a/2`,
        `${p}/ab/x`,
        `${p}/b`,
      ]);
      assert.deepEqual(names(await listAll(store, `${p}/a`)), [
        `${p}/a-b`,
        `${p}/a/1`,
        `${p}/a/2`,
        `${p}/ab/x`,
      ]);
      assert.deepEqual(names(await listAll(store, `${p}/a/`)), [`${p}/a/1`, `${p}/a/2`]);
      assert.deepEqual(names(await listAll(store, `${p}/a`, "/")), [`${p}/a-b`, `${p}/a/*`, `${p}/ab/*`]);
      assert.deepEqual(names(await listAll(store, `${p}/`, "/")), [
        `${p}/a-b`,
        `${p}/a/*`,
        `${p}/ab/*`,
        `${p}/b`,
      ]);
      assert.deepEqual(names(await listAll(store, `${p}/nothing/`)), []);
    });

    it("rolls up folders whose objects lie two or more levels down", {
      skip: quirks.missesDeepPrefixes ?? false,
    }, async () => {
      if (!store.capabilities.list) return;
      const p = ns("deep");
      await putMany(writer, [`${p}/a/1`, `${p}/a-b`, `${p}/ab/x/y`, `${p}/b/c/d/e`]);
      assert.deepEqual(names(await listAll(store, `${p}/`, "/")), [
        `${p}/a-b`,
        `${p}/a/*`,
        `${p}/ab/*`,
        `${p}/b/*`,
      ]);
      assert.deepEqual(names(await listAll(store, `${p}/a`, "/")), [`${p}/a-b`, `${p}/a/*`, `${p}/ab/*`]);
    });

    it("deletes objects, leaving their neighbours, and deleting twice succeeds", async () => {
      if (!store.capabilities.write) {
        await rejectsWithCode(store.put("x", new Uint8Array(1)), "READONLY");
        await rejectsWithCode(store.delete("x"), "READONLY");
        return;
      }
      const p = ns("delete");
      await putMany(writer, [`${p}/a/1`, `${p}/a/2`, `${p}/b`]);
      await store.delete(`${p}/a/1`);
      await store.delete(`${p}/a/1`);
      assert.deepEqual(await store.get(`${p}/a/1`), { status: "not_found" });
      assert.deepEqual(await mustGet(store, `${p}/a/2`), new TextEncoder().encode(`${p}/a/2`));
      await store.delete(`${p}/a/2`);
      assert.deepEqual(names(await listAll(store, `${p}/`)), [`${p}/b`]);
      assert.deepEqual(names(await listAll(store, `${p}/`, "/")), [`${p}/b`]);
    });

    it("honours create-only puts where the store says it can", async () => {
      if (!store.capabilities.conditionalPut) return;
      const key = `${ns("create-only")}/object`;
      await store.put(key, pattern(10, 1), { ifNoneMatch: "*" });
      await rejectsWithCode(store.put(key, pattern(10, 2), { ifNoneMatch: "*" }), "PRECONDITION_FAILED");
      assert.deepEqual(await mustGet(store, key), pattern(10, 1));
    });
  });
}

function compareCodePoints(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0) as number);
  const y = [...b].map((c) => c.codePointAt(0) as number);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  }
  return x.length - y.length;
}
