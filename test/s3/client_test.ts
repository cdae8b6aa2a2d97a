import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ListEntry, S3Client } from "../../src/s3/client.ts";
import { S3Error } from "../../src/s3/errors.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";

/** One exchange seen by {@linkcode recordingFetch}. */
interface Exchange {
  method: string;
  url: string;
  status: number;
  contentRange: string | null;
  /** How many `<Key>` elements the request body held (DeleteObjects batches). */
  bodyKeys: number;
}

/** The real fetch, noting what each exchange was; the body is left to the client. */
function recordingFetch(exchanges: Exchange[]): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    exchanges.push({
      method: init?.method ?? "GET",
      url: String(input),
      status: response.status,
      contentRange: response.headers.get("content-range"),
      bodyKeys: init?.body instanceof Uint8Array ? text(init.body).split("<Key>").length - 1 : 0,
    });
    return response;
  };
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

async function collect(entries: AsyncIterable<ListEntry>): Promise<ListEntry[]> {
  const all: ListEntry[] = [];
  for await (const entry of entries) all.push(entry);
  return all;
}

async function keysUnder(client: S3Client, prefix: string): Promise<string[]> {
  const entries = await collect(client.listObjectsV2({ prefix }));
  return entries.map((entry) => entry.type === "object" ? entry.key : `prefix:${entry.prefix}`);
}

async function bodyOf(client: S3Client, key: string): Promise<Uint8Array> {
  const got = await client.getObject(key);
  assert.equal(got.status, "ok", `expected "${key}" to exist`);
  return got.body;
}

async function putAll(client: S3Client, keys: readonly string[], concurrency = 16): Promise<void> {
  let next = 0;
  async function worker(): Promise<void> {
    while (next < keys.length) {
      const key = keys[next++] as string;
      await client.putObject(key, key);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function assertS3Error(
  promise: Promise<unknown>,
  check: (error: S3Error) => void,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof S3Error, `expected an S3Error, got ${String(error)}`);
    check(error);
    return true;
  });
}

describe("S3Client against s3rver", () => {
  let server: S3TestServer;
  let exchanges: Exchange[];
  let s3: S3Client;

  before(async () => {
    server = await startS3Server();
    exchanges = [];
    s3 = new S3Client({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      fetch: recordingFetch(exchanges),
    });
  });

  after(async () => {
    await server?.stop();
  });

  describe("putObject() and getObject()", () => {
    it("putObject() stores bytes that getObject() returns unchanged, with their size", async () => {
      const bytes = randomBytes(300_000);
      await s3.putObject("roundtrip/bytes.bin", bytes);
      const got = await s3.getObject("roundtrip/bytes.bin");
      assert.equal(got.status, "ok");
      assert.deepEqual(got.body, bytes);
      assert.equal(got.size, bytes.length);
    });

    it("putObject() stores a string as its UTF-8 bytes", async () => {
      const value = "snapshot ✓ — 日本語 😀\n";
      await s3.putObject("roundtrip/string.txt", value);
      const body = await bodyOf(s3, "roundtrip/string.txt");
      assert.deepEqual(body, new TextEncoder().encode(value));
      assert.equal(text(body), value);
    });

    it("putObject() reads a ReadableStream body of many chunks whole", async () => {
      const chunks = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i * 37));
      let index = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          const chunk = chunks[index++];
          if (chunk) controller.enqueue(chunk);
          else controller.close();
        },
      });
      await s3.putObject("roundtrip/stream.bin", stream);
      const expected = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let offset = 0;
      for (const chunk of chunks) {
        expected.set(chunk, offset);
        offset += chunk.length;
      }
      assert.deepEqual(await bodyOf(s3, "roundtrip/stream.bin"), expected);
    });

    it("putObject() of an empty body stores an object of zero bytes", async () => {
      await s3.putObject("roundtrip/empty", new Uint8Array(0));
      const got = await s3.getObject("roundtrip/empty");
      assert.equal(got.status, "ok");
      assert.equal(got.body.length, 0);
      assert.equal(got.size, 0);
    });

    it("putObject() overwrites an existing key, and getObject() then returns the new bytes", async () => {
      await s3.putObject("roundtrip/overwritten", "first");
      await s3.putObject("roundtrip/overwritten", "second");
      assert.equal(text(await bodyOf(s3, "roundtrip/overwritten")), "second");
    });

    it("putObject() returns the ETag that headObject() and getObject() report", async () => {
      const { etag } = await s3.putObject("roundtrip/etag", "etag me", { contentMd5: true });
      assert.match(etag, /^"[0-9a-f]{32}"$/);
      const head = await s3.headObject("roundtrip/etag");
      assert.equal(head.status, "ok");
      assert.equal(head.etag, etag);
      const got = await s3.getObject("roundtrip/etag");
      assert.equal(got.status, "ok");
      assert.equal(got.etag, etag);
    });

    it("getObject() of a missing key returns not_found instead of throwing", async () => {
      assert.deepEqual(await s3.getObject("roundtrip/never-written"), { status: "not_found" });
    });
  });

  describe("getObject() with a range", () => {
    const key = "range/digits";
    const content = "0123456789abcdefghij";

    before(async () => {
      await s3.putObject(key, content);
    });

    it("getObject() reads a byte range through a 206 response and reports the whole object's size", async () => {
      exchanges.length = 0;
      const got = await s3.getObject(key, { range: { offset: 5, length: 4 } });
      assert.equal(got.status, "ok");
      assert.equal(text(got.body), "5678");
      assert.equal(got.size, content.length);
      assert.equal(exchanges.length, 1);
      assert.equal(exchanges[0]?.status, 206);
      assert.equal(exchanges[0]?.contentRange, `bytes 5-8/${content.length}`);
    });

    it("getObject() with an offset and no length reads to the end of the object", async () => {
      const got = await s3.getObject(key, { range: { offset: 15 } });
      assert.equal(got.status, "ok");
      assert.equal(text(got.body), "fghij");
      assert.equal(got.size, content.length);
    });

    it("getObject() with a range that runs past the end returns the bytes up to the end", async () => {
      const got = await s3.getObject(key, { range: { offset: 17, length: 100 } });
      assert.equal(got.status, "ok");
      assert.equal(text(got.body), "hij");
      assert.equal(got.size, content.length);
    });

    it("getObject() with a range that starts at or past the end returns zero bytes and the size", async () => {
      for (const offset of [content.length, content.length + 50]) {
        const got = await s3.getObject(key, { range: { offset, length: 10 } });
        assert.equal(got.status, "ok");
        assert.equal(got.body.length, 0);
        assert.equal(got.size, content.length);
      }
    });

    it("getObject() with a range of length 0 returns zero bytes and the size", async () => {
      const got = await s3.getObject(key, { range: { offset: 3, length: 0 } });
      assert.equal(got.status, "ok");
      assert.equal(got.body.length, 0);
      assert.equal(got.size, content.length);
    });

    it("getObject() with a range on a missing key returns not_found", async () => {
      assert.deepEqual(
        await s3.getObject("range/missing", { range: { offset: 0, length: 5 } }),
        { status: "not_found" },
      );
    });

    it("getObject() rejects a negative or fractional range with a RangeError before any request", async () => {
      exchanges.length = 0;
      await assert.rejects(s3.getObject(key, { range: { offset: -1, length: 2 } }), RangeError);
      await assert.rejects(s3.getObject(key, { range: { offset: 0, length: 1.5 } }), RangeError);
      assert.equal(exchanges.length, 0);
    });
  });

  describe("headObject()", () => {
    it("headObject() reports the size, ETag, content type and x-amz-meta metadata of an object", async () => {
      const { etag } = await s3.putObject("head/with-meta", "twelve bytes", {
        contentType: "text/plain",
        metadata: { "Source-Db": "/var/lib/app.db", sequence: "42" },
      });
      const info = await s3.headObject("head/with-meta");
      assert.equal(info.status, "ok");
      assert.equal(info.size, 12);
      assert.equal(info.etag, etag);
      assert.equal(info.contentType, "text/plain");
      assert.deepEqual(info.metadata, { "source-db": "/var/lib/app.db", sequence: "42" });
      assert.ok(info.lastModified instanceof Date);
    });

    it("headObject() of a missing key returns not_found", async () => {
      assert.deepEqual(await s3.headObject("head/never-written"), { status: "not_found" });
    });
  });

  describe("conditional getObject()", () => {
    it("getObject() with ifNoneMatch equal to the current ETag returns not_modified and no body", async () => {
      const { etag } = await s3.putObject("conditional/pointer", "manifest-0001");
      const got = await s3.getObject("conditional/pointer", { ifNoneMatch: etag });
      assert.deepEqual(got, { status: "not_modified", etag });
    });

    it("getObject() with ifNoneMatch equal to an older ETag returns the current body", async () => {
      const old = await s3.putObject("conditional/pointer2", "manifest-0001");
      const current = await s3.putObject("conditional/pointer2", "manifest-0002");
      assert.notEqual(old.etag, current.etag);
      const got = await s3.getObject("conditional/pointer2", { ifNoneMatch: old.etag });
      assert.equal(got.status, "ok");
      assert.equal(text(got.body), "manifest-0002");
      assert.equal(got.etag, current.etag);
    });
  });

  describe("deleteObject() and deleteObjects()", () => {
    it("deleteObject() removes an object, so getObject() then returns not_found", async () => {
      await s3.putObject("delete/one", "x");
      await s3.deleteObject("delete/one");
      assert.deepEqual(await s3.getObject("delete/one"), { status: "not_found" });
    });

    it("deleteObject() of a key that does not exist succeeds", async () => {
      await s3.deleteObject("delete/never-written");
    });

    it("deleteObjects() deletes 1,250 keys in batches of 1,000 and 250 and reports every key as deleted", async () => {
      // At the bucket's top level: s3rver deletes a batch in parallel and its pruning of emptied folders
      // races, answering 500 (which the client would retry, hiding the batch sizes this test checks).
      const keys = Array.from({ length: 1250 }, (_, i) => `bulk-${String(i).padStart(4, "0")}`);
      await putAll(s3, keys);
      assert.equal((await keysUnder(s3, "bulk-")).length, 1250);
      exchanges.length = 0;
      const result = await s3.deleteObjects(keys);
      assert.deepEqual(
        exchanges.filter((e) => e.method === "POST").map((e) => [e.status, e.bodyKeys]),
        [[200, 1000], [200, 250]],
      );
      assert.deepEqual(result.errors, []);
      assert.deepEqual([...result.deleted].sort(), keys);
      assert.deepEqual(await keysUnder(s3, "bulk-"), []);
    });

    it("deleteObjects() of keys that do not exist reports them as deleted, as S3 does", async () => {
      const result = await s3.deleteObjects(["bulk-missing/a", "bulk-missing/b"]);
      assert.deepEqual(result, { deleted: ["bulk-missing/a", "bulk-missing/b"], errors: [] });
    });
  });

  describe("copyObject()", () => {
    it("copyObject() copies an object's bytes to another key and leaves the source in place", async () => {
      const bytes = randomBytes(70_000);
      const { etag } = await s3.putObject("copy/source.bin", bytes);
      const copied = await s3.copyObject("copy/source.bin", "copy/destination.bin");
      assert.equal(copied.etag, etag);
      assert.deepEqual(await bodyOf(s3, "copy/destination.bin"), bytes);
      assert.deepEqual(await bodyOf(s3, "copy/source.bin"), bytes);
    });

    it("copyObject() onto itself with metadataDirective REPLACE succeeds and keeps the bytes", async () => {
      await s3.putObject("copy/touched", "keep these bytes");
      const before = await s3.headObject("copy/touched");
      assert.equal(before.status, "ok");
      const touched = await s3.copyObject("copy/touched", "copy/touched", { metadataDirective: "REPLACE" });
      assert.equal(touched.etag, before.etag);
      assert.ok(touched.lastModified instanceof Date);
      assert.ok(before.lastModified && touched.lastModified.getTime() >= before.lastModified.getTime());
      assert.equal(text(await bodyOf(s3, "copy/touched")), "keep these bytes");
    });

    it("copyObject() copies between keys that need percent-encoding", async () => {
      // No '+', '&', '=' or ',' in the source: s3rver decodes x-amz-copy-source with decodeURI, which
      // leaves their escapes in place; S3 itself decodes them.
      await s3.putObject("copy/a source key (1) é%!.bin", "odd names");
      await s3.copyObject("copy/a source key (1) é%!.bin", "copy/destination+é %(2)!.bin");
      assert.equal(text(await bodyOf(s3, "copy/destination+é %(2)!.bin")), "odd names");
    });

    it("copyObject() of a missing source throws an S3Error naming the destination", async () => {
      await assertS3Error(s3.copyObject("copy/no-such-source", "copy/never"), (error) => {
        assert.equal(error.code, "S3_REQUEST_FAILED");
        assert.equal(error.operation, "CopyObject");
        assert.equal(error.status, 404);
        assert.match(error.message, /copy\/never/);
      });
    });
  });

  describe("listObjectsV2()", () => {
    const keys = Array.from({ length: 50 }, (_, i) => `paged/key-${String(i).padStart(2, "0")}`);

    before(async () => {
      await putAll(s3, [...keys].reverse());
      await s3.putObject("pagedness/outside", "not under the prefix");
    });

    it("listObjectsV2() with pageSize 7 walks 8 pages and yields each of 50 keys once, in order", async () => {
      exchanges.length = 0;
      const entries = await collect(s3.listObjectsV2({ prefix: "paged/", pageSize: 7 }));
      assert.deepEqual(entries.map((e) => e.type === "object" ? e.key : e.prefix), keys);
      assert.ok(entries.every((e) => e.type === "object" && e.size === e.key.length));
      const lists = exchanges.filter((e) => e.url.includes("list-type=2"));
      assert.equal(lists.length, 8);
      assert.ok(!lists[0]?.url.includes("continuation-token"));
      assert.ok(lists.slice(1).every((e) => e.url.includes("continuation-token=")));
      assert.ok(lists.every((e) => e.url.includes("max-keys=7")));
    });

    it("listObjectsV2Page() returns one truncated page with a continuation token", async () => {
      const first = await s3.listObjectsV2Page({ prefix: "paged/", pageSize: 7 });
      assert.deepEqual(first.contents.map((o) => o.key), keys.slice(0, 7));
      assert.equal(first.isTruncated, true);
      assert.ok(first.nextContinuationToken);
      const second = await s3.listObjectsV2Page({
        prefix: "paged/",
        pageSize: 7,
        continuationToken: first.nextContinuationToken,
      });
      assert.deepEqual(second.contents.map((o) => o.key), keys.slice(7, 14));
    });

    it("listObjectsV2() with startAfter yields only the keys after it", async () => {
      const entries = await collect(s3.listObjectsV2({ prefix: "paged/", startAfter: "paged/key-44" }));
      assert.deepEqual(entries.map((e) => e.type === "object" ? e.key : e.prefix), keys.slice(45));
    });

    it("listObjectsV2() with a prefix that matches nothing yields nothing", async () => {
      assert.deepEqual(await keysUnder(s3, "paged/nothing-"), []);
    });

    it("listObjectsV2() with a delimiter yields folders as prefix entries, in key order with objects", async () => {
      for (const key of ["tree/a.txt", "tree/b/1", "tree/b/2", "tree/c/1", "tree/d.txt"]) {
        await s3.putObject(key, key);
      }
      const entries = await collect(s3.listObjectsV2({ prefix: "tree/", delimiter: "/" }));
      assert.deepEqual(
        entries.map((e) => e.type === "object" ? { object: e.key } : { prefix: e.prefix }),
        [{ object: "tree/a.txt" }, { prefix: "tree/b/" }, { prefix: "tree/c/" }, { object: "tree/d.txt" }],
      );
    });

    it("listObjectsV2() rejects a pageSize outside 1 to 1000 with a RangeError", async () => {
      await assert.rejects(collect(s3.listObjectsV2({ pageSize: 0 })), RangeError);
      await assert.rejects(collect(s3.listObjectsV2({ pageSize: 1001 })), RangeError);
    });
  });

  describe("keys that need encoding", () => {
    const awkward = [
      "keys/with space",
      "keys/plus+sign",
      "keys/percent%20literal",
      "keys/percent%",
      "keys/unicode-é-日本-😀",
      "keys/bang!(paren)*'quote",
      "keys/reserved=&?#;:@,$[]",
      "keys/tilde~under_score-dot.",
      "keys/nested/deeper/still deeper/leaf",
    ];

    it("keys with spaces, '+', '%', unicode and sub-delimiters round-trip and list back exactly", async () => {
      for (const key of awkward) await s3.putObject(key, `body of ${key}`);
      for (const key of awkward) {
        assert.equal(text(await bodyOf(s3, key)), `body of ${key}`, `body of "${key}"`);
        const head = await s3.headObject(key);
        assert.equal(head.status, "ok", `headObject("${key}")`);
      }
      const listed = await keysUnder(s3, "keys/");
      assert.deepEqual(new Set(listed), new Set(awkward));
      assert.equal(listed.length, awkward.length);
    });

    it("listObjectsV2() with a prefix that needs encoding finds exactly the keys under it", async () => {
      assert.deepEqual(await keysUnder(s3, "keys/plus+"), ["keys/plus+sign"]);
      assert.deepEqual(await keysUnder(s3, "keys/with "), ["keys/with space"]);
      assert.deepEqual(await keysUnder(s3, "keys/unicode-é"), ["keys/unicode-é-日本-😀"]);
    });

    it("deleteObjects() deletes keys that need encoding in the XML body", async () => {
      const result = await s3.deleteObjects(awkward);
      assert.deepEqual(result.errors, []);
      assert.deepEqual(await keysUnder(s3, "keys/"), []);
    });

    it("putObject() of a key with '.' or '..' segments writes that exact key or refuses it", async () => {
      // A URL parser resolves dot segments, so "dots/x/../y" would silently become "dots/y".
      const key = "dots/x/../y";
      let refused = false;
      try {
        await s3.putObject(key, "dotted");
      } catch (error) {
        assert.ok(error instanceof TypeError || error instanceof RangeError, `unexpected ${String(error)}`);
        refused = true;
      }
      const listed = await keysUnder(s3, "dots/");
      assert.deepEqual(listed, refused ? [] : [key]);
    });
  });

  describe("errors", () => {
    it("a client for a bucket that does not exist throws NoSuchBucket naming the bucket, with a hint", async () => {
      const missing = new S3Client({
        bucket: "tessera-no-such-bucket",
        endpoint: server.endpoint,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      });
      const calls: [string, () => Promise<unknown>][] = [
        ["GetObject", () => missing.getObject("some/key")],
        ["PutObject", () => missing.putObject("some/key", "x")],
        ["ListObjectsV2", () => collect(missing.listObjectsV2())],
      ];
      for (const [operation, call] of calls) {
        await assertS3Error(call(), (error) => {
          assert.equal(error.code, "S3_REQUEST_FAILED");
          assert.equal(error.s3Code, "NoSuchBucket");
          assert.equal(error.status, 404);
          assert.equal(error.operation, operation);
          assert.equal(error.bucket, "tessera-no-such-bucket");
          assert.equal(error.attempts, 1);
          assert.match(error.message, new RegExp(`S3 ${operation} of .*"?tessera-no-such-bucket`));
          assert.match(error.message, /NoSuchBucket/);
          assert.match(error.message, /check the bucket name/);
        });
      }
    });

    it("deleteObject() on a bucket that does not exist throws NoSuchBucket rather than succeeding", async () => {
      const missing = new S3Client({
        bucket: "tessera-no-such-bucket",
        endpoint: server.endpoint,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      });
      await assertS3Error(missing.deleteObject("some/key"), (error) => {
        assert.equal(error.s3Code, "NoSuchBucket");
        assert.equal(error.status, 404);
      });
    });
  });
});
