/**
 * The objects endpoint (`GET`/`HEAD /v1/objects/<key>`): the store's layout with caching headers a CDN and a
 * browser act on, checked header by header against the store's own objects; a browser replica (the wasm
 * engine of `src/web.ts`) reading it with `HttpStore` over a real socket; and `tessera serve --objects`.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { cp } from "node:fs/promises";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "@libsql/client";
import fc from "fast-check";
import { sha256Hex } from "../../src/bytes.ts";
import { TesseraError } from "../../src/errors.ts";
import { leaseKey, manifestKey, pointerKey } from "../../src/manifest/keys.ts";
import { parseSource } from "../../src/manifest/naming.ts";
import { rangeHeader } from "../../src/net/range.ts";
import { createApp, type TesseraApp } from "../../src/server/app.ts";
import { openServerDatabases, parseServerConfig } from "../../src/server/config.ts";
import { openObjects } from "../../src/server/objects_config.ts";
import { parseEntityTags } from "../../src/net/etag.ts";
import { parseRangeHeader } from "../../src/net/range.ts";
import { EXPOSED_HEADERS, type ObjectsOptions } from "../../src/server/objects.ts";
import { listen } from "../../src/server/serve.ts";
import { HttpStore } from "../../src/store/http.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { BlobStore, GetOptions, GetResult, StoreCallOptions } from "../../src/store/types.ts";
import { openReplica } from "../../src/web.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { PassThroughStore } from "../_helpers/counting.ts";
import { startInteractive } from "../_helpers/interactive.ts";
import { startStaticServer } from "../_helpers/static_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const TOKEN = "objects-token-0123456789";
const IMMUTABLE = "public, max-age=31536000, immutable";
const CORS = { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED_HEADERS };
const MISSING = '{"message":"No such object","code":"NOT_FOUND"}';

/** A store that records what the server read from it: each get's key and range, each head's key. */
class RecordingStore extends PassThroughStore {
  readonly gets: string[] = [];
  readonly heads: string[] = [];

  override get(key: string, options?: GetOptions): Promise<GetResult> {
    const range = options?.range;
    this.gets.push(range ? `${key} @${range.offset}+${range.length ?? "end"}` : key);
    return this.inner.get(key, options);
  }

  override head(key: string, options?: StoreCallOptions) {
    this.heads.push(key);
    return this.inner.head(key, options);
  }
}

/** A directory store holding databases `app` (with a lease) and `other`, and the file behind `app`. */
interface Stored {
  dir: string;
  path: string;
  store: LocalStore;
  /** Publishes `app.db` again; returns the new sequence. */
  sync(): Promise<number>;
  /** Runs SQL on `app.db`. */
  write(sql: string): Promise<void>;
}

async function makeStored(label: string): Promise<Stored> {
  const dir = await makeTempDir(`objects-${label}`);
  const store = new LocalStore(join(dir, "store"));
  const path = join(dir, "app.db");
  const write = async (sql: string, file = path) => {
    const client = createClient({ url: `file:${file}` });
    try {
      await client.executeMultiple(sql);
    } finally {
      client.close();
    }
  };
  // Rows of random text, so chunks neither compress away nor repeat: several packs' worth of ranges.
  await write(
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);" +
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) " +
      "INSERT INTO t SELECT x, hex(randomblob(100)) FROM c;",
  );
  const publish = async (file: string, name: string) =>
    (await syncDatabase(file, { stores: [store], hostname: "h", name, spoolDir: join(dir, `spool-${name}`) }))
      .sequence;
  const other = join(dir, "other.db");
  await write("CREATE TABLE secret (v TEXT); INSERT INTO secret VALUES ('hidden');", other);
  await publish(other, "other");
  await publish(path, "app");
  // A replicator's lease, long expired, so the syncs here still publish.
  const lease = { version: 1, writer: "w", hostname: "elsewhere", pid: 1, path: "/x", acquiredMs: 0 };
  await store.put(
    leaseKey("app"),
    new TextEncoder().encode(JSON.stringify({ ...lease, renewedMs: 0, ttlMs: 1000 })),
  );
  return { dir, path, store, sync: () => publish(path, "app"), write: (sql) => write(sql) };
}

/** Every key under `prefix`. */
async function keysUnder(store: BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of store.list(prefix)) if (item.type === "object") keys.push(item.key);
  return keys;
}

async function bytesOf(
  store: BlobStore,
  key: string,
): Promise<{ body: Uint8Array; etag: string; date: string }> {
  const got = await store.get(key);
  assert.equal(got.status, "ok", key);
  if (got.status !== "ok") throw new Error("unreachable");
  return { body: got.body, etag: got.etag, date: got.lastModified!.toUTCString() };
}

function headersOf(response: Response): Record<string, string> {
  return Object.fromEntries(response.headers);
}

function objectsApp(store: BlobStore, objects: Partial<ObjectsOptions> = {}): TesseraApp {
  return createApp({ databases: {}, objects: { store, databases: ["app"], public: true, ...objects } });
}

describe("parseRangeHeader() and parseEntityTags()", () => {
  it("parseRangeHeader() reads back every range HttpStore asks for", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 2 ** 40 }),
        fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }),
        (offset, length) => {
          assert.deepEqual(parseRangeHeader(rangeHeader({ offset, length })), { offset, length });
        },
      ),
    );
  });

  it("parseRangeHeader() never throws, and takes only one well-formed range of bytes", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom("b", "y", "t", "e", "s", "=", "-", ",", " ", "1", "0") }),
        (text) => {
          const parsed = parseRangeHeader(text);
          if (parsed === undefined) return;
          assert.match(text.trim(), /^bytes=[ ,]*\d*-\d*[ ,]*$/);
          if ("suffix" in parsed) assert.ok(Number.isSafeInteger(parsed.suffix) && parsed.suffix >= 0);
          else assert.ok(parsed.offset >= 0 && (parsed.length === undefined || parsed.length >= 1));
        },
      ),
    );
    for (
      const text of [
        "bytes=5-4",
        "bytes=-",
        "bytes=1-2,4-5",
        "bytes=1-2,,3-4",
        "bytes=,",
        "bytes=99999999999999999999-99999999999999999998",
        "items=0-1",
        "bytes 0-1",
        null,
      ]
    ) {
      assert.equal(parseRangeHeader(text), undefined, String(text));
    }
  });

  it("parseRangeHeader() takes the unit in any case, skips empty list elements, and reads huge positions as past the end", () => {
    const far = 2 ** 52;
    const cases: [string, unknown][] = [
      ["Bytes=0-1", { offset: 0, length: 2 }],
      ["BYTES=5-", { offset: 5, length: undefined }],
      ["bytes=1-2,", { offset: 1, length: 2 }],
      ["bytes=, 1-2 ,", { offset: 1, length: 2 }],
      ["bytes=0-99999999999999999999", { offset: 0, length: far + 1 }],
      ["bytes=99999999999999999999-", { offset: far, length: undefined }],
      ["bytes=99999999999999999999-999999999999999999999", { offset: far, length: 1 }],
      ["bytes=-99999999999999999999", { suffix: far }],
      [`bytes=${"9".repeat(5000)}-`, { offset: far, length: undefined }],
    ];
    for (const [text, parsed] of cases) assert.deepEqual(parseRangeHeader(text), parsed, text);
  });

  it("parseEntityTags() reads lists, weak tags and *, never throwing on anything else", () => {
    assert.deepEqual(parseEntityTags('"a", W/"b",  "c,d" , *'), ['"a"', '"b"', '"c,d"', "*"]);
    assert.deepEqual(parseEntityTags(null), []);
    assert.deepEqual(parseEntityTags("unquoted"), []);
    fc.assert(fc.property(fc.string(), (text) => {
      for (const tag of parseEntityTags(text)) assert.match(tag, /^(\*|"[^"]*")$/);
    }));
  });
});

describe("the objects endpoint", () => {
  let s: Stored;
  let app: TesseraApp;
  const ask = (key: string, headers: Record<string, string> = {}, method = "GET") =>
    app.fetch(new Request(`http://server/v1/objects/${key}`, { method, headers }));

  before(async () => {
    s = await makeStored("endpoint");
    app = objectsApp(s.store);
  });
  after(async () => {
    await app?.shutdown();
    if (s) await removeDir(s.dir);
  });

  it("serves a pointer as no-cache with the store's ETag, and answers a poll with that ETag 304", async () => {
    const key = pointerKey("app");
    const stored = await bytesOf(s.store, key);
    const response = await ask(key);
    assert.equal(response.status, 200);
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), stored.body);
    assert.deepEqual(headersOf(response), {
      "cache-control": "no-cache",
      etag: stored.etag,
      "content-length": String(stored.body.length),
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      "last-modified": stored.date,
      ...CORS,
    });
    for (const tag of [stored.etag, `W/${stored.etag}`, `"nope", ${stored.etag}`, "*"]) {
      const poll = await ask(key, { "if-none-match": tag });
      assert.equal(poll.status, 304, tag);
      assert.equal(await poll.text(), "");
      assert.equal(poll.headers.get("etag"), stored.etag);
      assert.equal(poll.headers.get("cache-control"), "no-cache");
      assert.equal(poll.headers.get("access-control-allow-origin"), "*");
    }
    const changed = await ask(key, { "if-none-match": '"an-older-pointer"' });
    assert.equal(changed.status, 200);
    assert.deepEqual(new Uint8Array(await changed.arrayBuffer()), stored.body);
  });

  it("serves packs and manifests as immutable, with one ETag for whole and ranged answers, ranges byte-exact", async () => {
    const packs = await keysUnder(s.store, "packs/");
    const manifests = await keysUnder(s.store, "dbs/app/manifests/");
    assert.ok(
      packs.length > 0 && manifests.length === 1,
      `packs ${packs.length}, manifests ${manifests.length}`,
    );
    for (const key of [packs[0]!, manifests[0]!]) {
      const stored = await bytesOf(s.store, key);
      const size = stored.body.length;
      // Not the store's tag: the SHA-256 of the bytes, which a pack's key holds and a manifest's is made once.
      const etag = `"${await sha256Hex(stored.body)}"`;
      const base = {
        "cache-control": IMMUTABLE,
        etag,
        "content-type": "application/octet-stream",
        "accept-ranges": "bytes",
        "last-modified": stored.date,
        ...CORS,
      };
      const whole = await ask(key);
      assert.equal(whole.status, 200);
      assert.deepEqual(headersOf(whole), { ...base, "content-length": String(size) });
      assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), stored.body);
      const head = await ask(key, {}, "HEAD");
      assert.equal(head.status, 200);
      assert.deepEqual(headersOf(head), { ...base, "content-length": String(size) });
      assert.equal(await head.text(), "");

      const ranges: [string, number, number][] = [
        ["bytes=0-0", 0, 0],
        ["bytes=3-40", 3, 40],
        [`bytes=${size - 10}-`, size - 10, size - 1],
        [`bytes=5-${size + 1000}`, 5, size - 1],
        ["bytes=-7", size - 7, size - 1],
        [`bytes=-${size + 5}`, 0, size - 1],
        ["Bytes=0-1", 0, 1],
        ["bytes=0-99999999999999999999", 0, size - 1],
        ["bytes=2-4,", 2, 4],
      ];
      for (const [range, first, last] of ranges) {
        const part = await ask(key, { range });
        assert.equal(part.status, 206, `${key} ${range}`);
        assert.deepEqual(headersOf(part), {
          ...base,
          "content-length": String(last - first + 1),
          "content-range": `bytes ${first}-${last}/${size}`,
        });
        assert.deepEqual(new Uint8Array(await part.arrayBuffer()), stored.body.slice(first, last + 1));
      }
      for (
        const range of [
          `bytes=${size}-`,
          `bytes=${size + 9}-${size + 20}`,
          "bytes=-0",
          "bytes=99999999999999999999-",
          `bytes=${2 ** 53}-${2 ** 53 + 5}`,
        ]
      ) {
        const refused = await ask(key, { range });
        assert.equal(refused.status, 416, range);
        assert.equal(refused.headers.get("content-range"), `bytes */${size}`);
        assert.equal(refused.headers.get("cache-control"), "no-store");
        assert.equal(await refused.text(), "");
      }
      // Not one range of bytes: the whole object, as RFC 9110 lets a server answer.
      for (const range of ["bytes=9-2", "bytes=0-1,4-5", "items=0-1", "bytes=x-"]) {
        const all = await ask(key, { range });
        assert.equal(all.status, 200, range);
        assert.equal((await all.arrayBuffer()).byteLength, size);
      }
      const cached = await ask(key, { "if-none-match": etag, range: "bytes=0-9" });
      assert.equal(cached.status, 304, "If-None-Match is decided before Range");
      assert.deepEqual(headersOf(cached), {
        "cache-control": IMMUTABLE,
        etag,
        "last-modified": stored.date,
        ...CORS,
      });
      for (const tags of ["*", `"other", W/${etag}`]) {
        const poll = await ask(key, { "if-none-match": tags });
        assert.equal(poll.status, 304, tags);
        assert.deepEqual(headersOf(poll), headersOf(cached), tags);
      }
      assert.equal((await ask(key, { "if-none-match": etag }, "HEAD")).status, 304);
      const same = await ask(key, { range: "bytes=1-2", "if-range": etag });
      assert.equal(same.status, 206);
      assert.deepEqual(new Uint8Array(await same.arrayBuffer()), stored.body.slice(1, 3));
      const stale = await ask(key, { range: "bytes=1-2", "if-range": '"another-copy"' });
      assert.equal(stale.status, 200, "an If-Range of another copy gets the whole object");
      assert.deepEqual(new Uint8Array(await stale.arrayBuffer()), stored.body);
    }
  });

  it("serves a chunk object by its id, immutable", async () => {
    // A publish puts data chunks into packs; a chunk object is what older writers (and index chunks) left.
    const id = "ab".repeat(32);
    const key = `chunks/ab/${id}`;
    await s.store.put(key, new Uint8Array([1, 2, 3, 4, 5]));
    const response = await ask(key, { range: "bytes=1-3" });
    assert.equal(response.status, 206);
    assert.equal(response.headers.get("cache-control"), IMMUTABLE);
    assert.equal(response.headers.get("etag"), `"${id}"`);
    assert.equal(response.headers.get("content-range"), "bytes 1-3/5");
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array([2, 3, 4]));
  });

  it("answers 404 with no-store, always the same answer, for every key it does not serve or does not have", async () => {
    const chunk = `chunks/cd/${"cd".repeat(32)}`;
    const cases = [
      leaseKey("app"), // present, never served
      pointerKey("other"), // present, a database not exposed
      manifestKey("other", 1),
      manifestKey("app", 255), // an exposed database's manifest not published yet
      chunk, // missing
      `chunks/ce/${"cd".repeat(32)}`, // its folder does not match its id
      `chunks/CD/${"CD".repeat(32)}`,
      "chunks/",
      "packs",
      "dbs/app/",
      "dbs/app/manifests/",
      "dbs",
      "",
      "dbs%2Fother%2Fpointer", // an escaped slash decodes to a key not served
      "dbs/app%2F..%2Fother/pointer",
      "dbs/app/pointer%00",
      "dbs/app/%E0%A4%A", // not UTF-8 once decoded
      "dbs/app/.tessera-upload",
      // Other spellings of served keys: each would be one more CDN cache key reaching the server.
      "dbs%2Fapp%2Fpointer",
      "%64bs/app/pointer",
      "dbs/app/poi%6Eter",
      "dbs/app/pointer?",
      "dbs/app/pointer?v=1",
      `${manifestKey("app", 1)}?x`,
      `${pointerKey("app")}/`,
    ];
    let first: Record<string, string> | undefined;
    for (const key of cases) {
      const get = await ask(key);
      assert.equal(get.status, 404, `GET ${key}`);
      assert.equal(await get.text(), MISSING, key);
      const headers = headersOf(get);
      assert.equal(headers["cache-control"], "no-store", key);
      assert.equal(headers["content-length"], String(MISSING.length), key);
      first ??= headers;
      assert.deepEqual(headers, first, `${key} answers as every other 404`);
      const head = await ask(key, {}, "HEAD");
      assert.equal(head.status, 404, `HEAD ${key}`);
      assert.equal(await head.text(), "", key);
      assert.deepEqual(headersOf(head), headers, `HEAD ${key} has the GET's headers`);
    }
    const bare = await app.fetch(new Request("http://server/v1/objects"));
    assert.equal(bare.status, 404);
    assert.equal(await bare.text(), MISSING);
    // The missing manifest appears later: it is served then (no miss was cached, by the server or a CDN).
    const published = await s.sync();
    assert.equal((await ask(manifestKey("app", published))).status, 200);
  });

  it("answers every other method 405 with Allow, CORS and no-store, and writes nothing", async () => {
    const chunk = `chunks/ef/${"ef".repeat(32)}`;
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "PROPFIND"]) {
      for (const key of [chunk, pointerKey("app"), leaseKey("app")]) {
        const body = method === "DELETE" || method === "PROPFIND" ? null : "x";
        const response = await app.fetch(new Request(`http://server/v1/objects/${key}`, { method, body }));
        assert.equal(response.status, 405, `${method} ${key}`);
        const text = await response.text();
        assert.deepEqual(JSON.parse(text), {
          message: `The objects endpoint answers GET, HEAD, OPTIONS, not ${method}`,
          code: "METHOD_NOT_ALLOWED",
        });
        assert.deepEqual(headersOf(response), {
          allow: "GET, HEAD, OPTIONS",
          "cache-control": "no-store",
          "content-type": "application/json",
          "content-length": String(text.length),
          ...CORS,
        });
      }
    }
    assert.equal((await s.store.head(chunk)).status, "not_found");
    assert.equal((await ask(pointerKey("app"))).status, 200);
  });

  it("reads nothing of a chunk or pack to answer a HEAD or a revalidation, and only the range asked for", async () => {
    const counting = new (class extends PassThroughStore {
      bytes = 0;
      override async get(key: string, options?: GetOptions): Promise<GetResult> {
        const got = await super.get(key, options);
        if (got.status === "ok") this.bytes += got.body.length;
        return got;
      }
    })(s.store);
    const counted = objectsApp(counting);
    try {
      const get = (key: string, headers: Record<string, string> = {}, method = "GET") =>
        counted.fetch(new Request(`http://server/v1/objects/${key}`, { method, headers }));
      const id = "5a".repeat(32);
      await s.store.put(`chunks/5a/${id}`, new Uint8Array(5000).fill(7));
      const manifest = (await keysUnder(s.store, "dbs/app/manifests/"))[0]!;
      const manifestSize = (await bytesOf(s.store, manifest)).body.length;
      for (const key of [(await keysUnder(s.store, "packs/"))[0]!, `chunks/5a/${id}`, manifest]) {
        const { body, date } = await bytesOf(s.store, key);
        const etag = `"${await sha256Hex(body)}"`;
        // A manifest's tag is made of its bytes once, by the first request that needs it.
        const first = key === manifest ? manifestSize : 0;
        const expected = key.startsWith("chunks/") ? `"${id}"` : etag;
        counting.bytes = 0;
        const head = await get(key, {}, "HEAD");
        assert.equal(head.status, 200);
        assert.equal(head.headers.get("etag"), expected);
        assert.equal(head.headers.get("content-length"), String(body.length));
        assert.equal(head.headers.get("last-modified"), date);
        assert.equal(counting.bytes, first, `${key}: HEAD`);
        for (const tags of ["*", expected, `"a", W/${expected}`]) {
          counting.bytes = 0;
          const poll = await get(key, { "if-none-match": tags });
          assert.equal(poll.status, 304, tags);
          assert.equal(poll.headers.get("last-modified"), date, "a 304 carries Last-Modified");
          assert.equal(counting.bytes, 0, `${key}: If-None-Match ${tags}`);
        }
        counting.bytes = 0;
        const part = await get(key, { range: "bytes=100-199" });
        assert.equal(part.status, 206);
        assert.deepEqual(new Uint8Array(await part.arrayBuffer()), body.slice(100, 200));
        assert.equal(counting.bytes, 100, `${key}: a range of 100 bytes`);
      }
      // A missing chunk is 404 for a HEAD and a revalidation too, though its tag needs no read.
      const missing = `chunks/5b/${"5b".repeat(32)}`;
      assert.equal((await get(missing, {}, "HEAD")).status, 404);
      assert.equal((await get(missing, { "if-none-match": `"${"5b".repeat(32)}"` })).status, 404);
    } finally {
      await counted.shutdown();
    }
  });

  it("gives copies of one store the same ETags for chunks, packs and manifests, and each pointer the store's", async () => {
    const chunk = `chunks/c0/${"c0".repeat(32)}`;
    await s.store.put(chunk, new Uint8Array([9, 8, 7]));
    const copy = join(s.dir, "store-copy");
    await cp(join(s.dir, "store"), copy, { recursive: true });
    const other = objectsApp(new LocalStore(copy));
    try {
      const keys = [
        (await keysUnder(s.store, "packs/"))[0]!,
        (await keysUnder(s.store, "dbs/app/manifests/"))[0]!,
        chunk,
      ];
      for (const key of keys) {
        const tag = async (target: TesseraApp, method: string) => {
          const response = await target.fetch(new Request(`http://server/v1/objects/${key}`, { method }));
          assert.equal(response.status, 200, key);
          await response.body?.cancel();
          return response.headers.get("etag");
        };
        const here = await tag(app, "GET");
        assert.ok(here !== null && here !== (await bytesOf(s.store, key)).etag, "not the store's own tag");
        assert.equal(await tag(other, "GET"), here, key);
        assert.equal(await tag(other, "HEAD"), here, key);
      }
      const pointer = await other.fetch(new Request(`http://server/v1/objects/${pointerKey("app")}`));
      assert.equal(
        pointer.headers.get("etag"),
        (await bytesOf(new LocalStore(copy), pointerKey("app"))).etag,
      );
      await pointer.body?.cancel();
    } finally {
      await other.shutdown();
    }
  });

  it("keeps the bytes of bodies no client has read within maxBufferedBytes, and frees them once read or cancelled", async () => {
    const budget = 250;
    const busy = objectsApp(s.store, { maxBufferedBytes: budget });
    const pack = (await keysUnder(s.store, "packs/"))[0]!;
    const { body } = await bytesOf(s.store, pack);
    const get = (headers: Record<string, string> = { range: "bytes=0-99" }) =>
      busy.fetch(new Request(`http://server/v1/objects/${pack}`, { headers }));
    const metrics = async () =>
      (await (await busy.fetch(new Request("http://server/metrics"))).text()).split("\n")
        .filter((line) => /^tessera_object_(buffer|sent)/.test(line)).sort();
    try {
      const held: Response[] = [];
      for (let i = 0; i < 20; i++) {
        const response = await get();
        if (response.status === 206) held.push(response);
        else {
          assert.equal(response.status, 503);
          assert.equal(response.headers.get("retry-after"), "1");
          assert.equal(response.headers.get("cache-control"), "no-store");
          assert.equal(response.headers.get("access-control-allow-origin"), "*");
          assert.equal((await response.json()).code, "UNAVAILABLE");
        }
      }
      assert.equal(held.length, 2, "two bodies of 100 bytes fit in 250, a third does not");
      assert.deepEqual(await metrics(), [
        "tessera_object_buffer_refusals_total 18",
        "tessera_object_buffered_bytes 200",
        'tessera_object_sent_bytes_total{kind="pack"} 0',
      ]);
      // What needs no body is answered all the same.
      const head = await busy.fetch(new Request(`http://server/v1/objects/${pack}`, { method: "HEAD" }));
      assert.equal(head.status, 200);
      assert.equal((await get({ "if-none-match": head.headers.get("etag")! })).status, 304);
      assert.deepEqual(new Uint8Array(await held[0]!.arrayBuffer()), body.slice(0, 100));
      const next = await get();
      assert.equal(next.status, 206, "a body read to its end frees its bytes");
      await held[1]!.body!.cancel();
      await next.body!.cancel();
      assert.deepEqual(await metrics(), [
        "tessera_object_buffer_refusals_total 18",
        "tessera_object_buffered_bytes 0",
        'tessera_object_sent_bytes_total{kind="pack"} 100',
      ]);
      // With nothing waiting, one object larger than the budget still goes out.
      const whole = await get({});
      assert.equal(whole.status, 200);
      assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), body);
      assert.equal((await metrics())[1], "tessera_object_buffered_bytes 0");
    } finally {
      await busy.shutdown();
    }
  });

  it("logs a store failure on one line, with no query or credentials of the store's URL, and answers 503", async () => {
    const failing = new (class extends PassThroughStore {
      override get(): Promise<GetResult> {
        return Promise.reject(
          new Error(
            "GET of https://user:pa55@bucket.example/packs/x?X-Amz-Signature=s3cr3t failed\nsecond line",
          ),
        );
      }
    })(s.store);
    const broken = objectsApp(failing);
    const logged: string[] = [];
    const error = console.error;
    console.error = (...args: unknown[]) => void logged.push(args.map(String).join(" "));
    try {
      const pack = (await keysUnder(s.store, "packs/"))[0]!;
      const response = await broken.fetch(new Request(`http://server/v1/objects/${pack}`));
      assert.equal(response.status, 503);
      assert.equal(response.headers.get("retry-after"), "1");
      assert.doesNotMatch(await response.text(), /bucket|s3cr3t/);
      assert.deepEqual(logged, [
        "tessera: /v1/objects could not read a pack from the store: GET of https://bucket.example/packs/x?… failed",
      ]);
    } finally {
      console.error = error;
      await broken.shutdown();
    }
  });

  it("gives the objects of a store with weak ETags (a static host, read with HttpStore) strong ETags of their bytes", async () => {
    const host = await startStaticServer(join(s.dir, "store"));
    const upstream = objectsApp(new HttpStore(host.url));
    try {
      const get = (key: string, headers: Record<string, string> = {}, method = "GET") =>
        upstream.fetch(new Request(`http://server/v1/objects/${key}`, { method, headers }));
      const pack = (await keysUnder(s.store, "packs/"))[0]!;
      for (const key of [pack, pointerKey("app")]) {
        const { body, etag: weak } = await new HttpStore(host.url).get(key).then((got) => {
          assert.equal(got.status, "ok");
          return got as { body: Uint8Array; etag: string };
        });
        assert.match(weak, /^W\//, "http-server's own ETags are weak");
        const etag = `"${await sha256Hex(body)}"`;
        const whole = await get(key);
        assert.equal(whole.headers.get("etag"), etag);
        assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), body);
        const part = await get(key, { range: "bytes=2-9" });
        assert.equal(part.status, 206);
        assert.equal(part.headers.get("etag"), etag, "the same tag for a part");
        assert.deepEqual(new Uint8Array(await part.arrayBuffer()), body.slice(2, 10));
        const head = await get(key, {}, "HEAD");
        assert.equal(head.headers.get("etag"), etag);
        assert.equal(head.headers.get("content-length"), String(body.length));
        const poll = await get(key, { "if-none-match": etag });
        assert.equal(poll.status, 304);
        assert.equal(await poll.text(), "");
      }
    } finally {
      await upstream.shutdown();
      await host.stop();
    }
  });

  it("answers a CORS preflight allowing Range, If-None-Match and Authorization", async () => {
    const response = await app.fetch(
      new Request(`http://server/v1/objects/${pointerKey("app")}`, {
        method: "OPTIONS",
        headers: {
          origin: "https://page.example",
          "access-control-request-method": "GET",
          "access-control-request-headers": "range, if-none-match",
        },
      }),
    );
    assert.equal(response.status, 204);
    assert.deepEqual(headersOf(response), {
      "cache-control": "no-store",
      "access-control-allow-origin": "*",
      "access-control-allow-methods": "GET, HEAD",
      "access-control-allow-headers": "Range, If-None-Match, If-Range, Authorization",
      "access-control-expose-headers": EXPOSED_HEADERS,
      "access-control-max-age": "86400",
    });
  });

  it("with tokens, answers 401 to a missing or wrong token before anything else, and caches privately", async () => {
    const guarded = objectsApp(s.store, { public: undefined, tokens: [TOKEN] });
    const withOrigin = objectsApp(s.store, {
      public: undefined,
      tokens: [TOKEN],
      corsOrigin: "https://app.example.com",
    });
    try {
      const get = (target: TesseraApp, key: string, headers: Record<string, string> = {}) =>
        target.fetch(new Request(`http://server/v1/objects/${key}`, { headers }));
      for (const headers of [{}, { authorization: `Bearer ${TOKEN}x` }, { authorization: TOKEN }]) {
        for (const key of [pointerKey("app"), leaseKey("app"), "nothing/here"]) {
          const refused = await get(guarded, key, headers);
          assert.equal(refused.status, 401, key);
          assert.equal(refused.headers.get("www-authenticate"), "Bearer");
          assert.equal(refused.headers.get("cache-control"), "no-store");
          assert.equal(refused.headers.get("access-control-allow-origin"), null, "no origin was allowed");
          assert.equal((await refused.json()).code, "UNAUTHORIZED");
        }
      }
      const auth = { authorization: `Bearer ${TOKEN}` };
      const pointer = await get(guarded, pointerKey("app"), auth);
      assert.equal(pointer.status, 200);
      assert.equal(pointer.headers.get("cache-control"), "private, no-cache");
      await pointer.body?.cancel();
      const manifest = await get(guarded, (await keysUnder(s.store, "dbs/app/manifests/"))[0]!, auth);
      assert.equal(manifest.headers.get("cache-control"), "private, max-age=31536000, immutable");
      await manifest.body?.cancel();
      const lease = await get(guarded, leaseKey("app"), auth);
      assert.equal(lease.status, 404);
      await lease.body?.cancel();

      const refused = await get(withOrigin, pointerKey("app"));
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get("access-control-allow-origin"), "https://app.example.com");
      await refused.body?.cancel();
      const allowed = await get(withOrigin, pointerKey("app"), auth);
      assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example.com");
      assert.equal(allowed.headers.get("access-control-expose-headers"), EXPOSED_HEADERS);
      await allowed.body?.cancel();
    } finally {
      await guarded.shutdown();
      await withOrigin.shutdown();
    }
  });

  it("answers 429 past the request limit, and 503 when stopping, readable by pages on other origins", async () => {
    const stopping = objectsApp(s.store);
    await stopping.shutdown();
    const stopped = await stopping.fetch(new Request(`http://server/v1/objects/${pointerKey("app")}`));
    assert.equal(stopped.status, 503);
    assert.equal(stopped.headers.get("access-control-allow-origin"), "*");
    assert.equal(stopped.headers.get("cache-control"), "no-store");
    assert.equal((await stopped.json()).code, "SHUTTING_DOWN");

    // A store that holds every read until released keeps the one request the limit allows in flight.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const holding = new (class extends PassThroughStore {
      override async get(key: string, options?: GetOptions) {
        await held;
        return await super.get(key, options);
      }
    })(s.store);
    const busy = createApp({
      databases: {},
      objects: { store: holding, databases: ["app"], public: true },
      limits: { maxConcurrentRequests: 1 },
    });
    try {
      const first = busy.fetch(new Request(`http://server/v1/objects/${pointerKey("app")}`));
      const refused = await busy.fetch(new Request(`http://server/v1/objects/${pointerKey("app")}`));
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get("access-control-allow-origin"), "*");
      assert.equal(refused.headers.get("retry-after"), "1");
      await refused.body?.cancel();
      release();
      const answered = await first;
      assert.equal(answered.status, 200);
      await answered.body?.cancel();
    } finally {
      release();
      await busy.shutdown();
    }
  });

  it("refuses, at creation, options that would serve nobody or everybody by mistake", () => {
    const cases: [Partial<ObjectsOptions>, RegExp][] = [
      [{ public: undefined }, /give tokens, or public: true to serve them to anyone/],
      [{ public: false, tokens: [] }, /give tokens, or public: true/],
      [{ tokens: [TOKEN] }, /both public and with tokens: give one/],
      [{ public: undefined, tokens: ["two words"] }, /^Token 1 of the objects endpoint contains whitespace/],
      [{ databases: ["../x"] }, /database "\.\.\/x": it is not a name a store gives a database/],
      [
        { corsOrigin: "https://app.example.com/" },
        /pages of "https:\/\/app\.example\.com\/": expected "\*" or/,
      ],
      [{ corsOrigin: "app.example.com" }, /expected "\*" or an origin/],
      [{ maxBufferedBytes: 0 }, /with maxBufferedBytes 0: expected a whole number of bytes from 1/],
      [{ maxBufferedBytes: 1.5 }, /with maxBufferedBytes 1\.5: expected a whole number/],
    ];
    for (const [options, message] of cases) {
      assert.throws(() => objectsApp(s.store, options), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /two words/);
        return true;
      });
    }
  });

  it("counts answers by object kind and status in /metrics", async () => {
    const counted = objectsApp(s.store);
    try {
      const get = (key: string, headers: Record<string, string> = {}, method = "GET") =>
        counted.fetch(new Request(`http://server/v1/objects/${key}`, { method, headers }));
      const first = await get(pointerKey("app"));
      const etag = first.headers.get("etag")!;
      const size = (await first.arrayBuffer()).byteLength;
      await get(pointerKey("app"), { "if-none-match": etag });
      await get(pointerKey("app"), { "if-none-match": etag });
      const pack = (await keysUnder(s.store, "packs/"))[0]!;
      await (await get(pack, { range: "bytes=0-99" })).arrayBuffer();
      // Bytes count once the client took them: none of a body never read, part of one it gave up on.
      const unread = await get(pack, { range: "bytes=0-999" });
      const cancelled = await get(pack);
      const reader = cancelled.body!.getReader();
      const piece = (await reader.read()).value!.length;
      await reader.cancel();
      await (await get(leaseKey("app"))).arrayBuffer();
      await (await get(pack, {}, "POST")).arrayBuffer();
      const text = await (await counted.fetch(new Request("http://server/metrics"))).text();
      const lines = text.split("\n").filter((line) => line.startsWith("tessera_object_"));
      assert.deepEqual(lines.sort(), [
        "tessera_object_buffer_refusals_total 0",
        "tessera_object_buffered_bytes 1000",
        'tessera_object_requests_total{kind="other",status="404"} 1',
        'tessera_object_requests_total{kind="pack",status="200"} 1',
        'tessera_object_requests_total{kind="pack",status="206"} 2',
        'tessera_object_requests_total{kind="pack",status="405"} 1',
        'tessera_object_requests_total{kind="pointer",status="200"} 1',
        'tessera_object_requests_total{kind="pointer",status="304"} 2',
        'tessera_object_sent_bytes_total{kind="other"} 0',
        `tessera_object_sent_bytes_total{kind="pack"} ${100 + piece}`,
        `tessera_object_sent_bytes_total{kind="pointer"} ${size}`,
      ]);
      assert.ok(piece > 0 && piece < (await bytesOf(s.store, pack)).body.length);
      await unread.body?.cancel();
      assert.match(text, /^tessera_http_requests_total\{route="\/v1\/objects\/\*",status="304"\} 2$/m);
    } finally {
      await counted.shutdown();
    }
  });
});

describe("a browser replica reading the objects endpoint with HttpStore", () => {
  let s: Stored;

  before(async () => {
    s = await makeStored("replica");
  });
  after(async () => {
    if (s) await removeDir(s.dir);
  });

  it("reads rows, polls an unchanged pointer for a 304, follows a new snapshot, and fetches no chunk twice", async () => {
    const recording = new RecordingStore(s.store);
    const app = objectsApp(recording);
    const server = await listen(app, { port: 0 });
    const store = new HttpStore(`${server.url}/v1/objects`);
    const replica = await openReplica("app", { store, pollIntervalMs: 0 });
    try {
      const rows = async () => (await replica.execute("SELECT count(*) AS n, max(id) AS m FROM t")).rows[0]!;
      assert.deepEqual({ ...await rows() }, { n: 3000, m: 3000 });
      const metric = async (kind: string, status: number) => {
        const text = await (await fetch(`${server.url}/metrics`)).text();
        const line = new RegExp(
          `^tessera_object_requests_total\\{kind="${kind}",status="${status}"\\} (\\d+)$`,
          "m",
        );
        return Number(line.exec(text)?.[1] ?? 0);
      };
      assert.equal(await metric("pointer", 304), 0);
      const before = replica.sequence;
      await replica.refresh(1);
      assert.equal(replica.sequence, before);
      assert.equal(await metric("pointer", 304), 1, "the poll that found no change was a 304");

      await s.write("INSERT INTO t (v) VALUES ('new row'); UPDATE t SET v = 'changed' WHERE id = 1500;");
      const sequence = await s.sync();
      await replica.refresh(1);
      assert.equal(replica.sequence, sequence);
      assert.deepEqual({ ...await rows() }, { n: 3001, m: 3001 });
      const fresh = await replica.execute("SELECT v FROM t WHERE id IN (1500, 3001) ORDER BY id");
      assert.deepEqual(fresh.rows.map((r) => r.v), ["changed", "new row"]);

      const reads = recording.gets.filter((g) => g.startsWith("chunks/") || g.startsWith("packs/"));
      assert.ok(reads.length > 0);
      assert.deepEqual(reads.filter((g, i) => reads.indexOf(g) !== i), [], "no chunk was fetched twice");
      assert.ok(reads.some((g) => g.includes(" @")), "chunks travel as ranges of packs");
      assert.equal(await metric("pointer", 304), 1);
    } finally {
      replica.close();
      await server.close({ timeoutMs: 1000 });
    }
  });

  it("answers HEAD over a socket with the object's length and no body, a 404 HEAD as its GET, and other spellings 404", async () => {
    const recording = new RecordingStore(s.store);
    const app = objectsApp(recording);
    const server = await listen(app, { port: 0 });
    const { hostname, port } = new URL(server.url);
    /** Sends `request` on a connection of its own and returns all the server sent until it closed. */
    const raw = async (request: string) => {
      const socket = connect(Number(port), hostname);
      let answer = "";
      socket.on("data", (chunk) => (answer += chunk.toString("latin1")));
      const closed = new Promise((resolve) => socket.once("close", resolve));
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(`${request} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      await closed;
      return answer;
    };
    try {
      const pack = (await keysUnder(s.store, "packs/"))[0]!;
      const size = (await bytesOf(s.store, pack)).body.length;
      const [status, body] = (await raw(`HEAD /v1/objects/${pack}`)).split("\r\n\r\n") as [string, string];
      const head = `${status}\r\n`;
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.match(head, new RegExp(`\r\ncontent-length: ${size}\r\n`, "i"));
      assert.match(head, /\r\ncache-control: public, max-age=31536000, immutable\r\n/i);
      assert.equal(body, "");
      for (
        const path of [
          "dbs/app/../other/pointer",
          "dbs/app/%2e%2e/other/pointer",
          "chunks/../dbs/other/pointer",
        ]
      ) {
        const answer = await raw(`GET /v1/objects/${path}`);
        assert.match(answer, /^HTTP\/1\.1 404 /, path);
        assert.ok(answer.endsWith(MISSING), path);
      }
      assert.deepEqual([...recording.gets, ...recording.heads].filter((k) => k.includes("other")), []);
      const length = (answer: string) => /\r\ncontent-length: (\d+)\r\n/i.exec(answer)?.[1];
      const missing = await raw("GET /v1/objects/dbs/app/lease");
      assert.equal(length(missing), String(MISSING.length));
      assert.equal(length(await raw("HEAD /v1/objects/dbs/app/lease")), String(MISSING.length));
      // Other spellings of a served key. Deno hands the app the path as sent, which is then refused; Bun.serve
      // resolves dot segments and backslashes first, so the app sees the key's own path (docs/SERVER.md).
      const pointer = (await bytesOf(s.store, pointerKey("app"))).body;
      for (
        const path of [
          "dbs/other/../app/pointer",
          "dbs/app/%2e%2e/app/pointer",
          "dbs/./app/pointer",
          "dbs\\app\\pointer",
          "../objects/dbs/app/pointer",
        ]
      ) {
        const answer = await raw(`GET /v1/objects/${path}`);
        if ("Deno" in globalThis) {
          assert.match(answer, /^HTTP\/1\.1 404 /, path);
          assert.ok(answer.endsWith(MISSING), path);
        } else {
          assert.match(answer, /^HTTP\/1\.1 200 /, path);
          assert.ok(answer.endsWith(Buffer.from(pointer).toString("latin1")), path);
        }
      }
      for (const path of ["dbs%2Fapp%2Fpointer", "%64bs/app/pointer", "dbs/app/pointer?v=2"]) {
        assert.match(await raw(`GET /v1/objects/${path}`), /^HTTP\/1\.1 404 /, path);
      }
    } finally {
      await server.close({ timeoutMs: 1000 });
    }
  });
});

describe("the config's objects", () => {
  const config = (objects: unknown, extra: Record<string, unknown> = {}) =>
    parseServerConfig(
      { store: "file:///backups", databases: { app: { tokens: [TOKEN] } }, objects, ...extra },
      'file "server.json"',
      { OBJECTS_TOKEN: "from-env-secret" },
    );

  it("defaults to the store and the databases served, and to tokens unless every database is public", () => {
    assert.equal(config(undefined).objects, undefined);
    assert.equal(config(false).objects, undefined);
    assert.deepEqual(
      config({ tokens: ["env:OBJECTS_TOKEN"], corsOrigin: "https://app.example.com" }).objects,
      {
        store: "file:///backups",
        databases: ["app"],
        public: false,
        tokens: ["from-env-secret"],
        corsOrigin: "https://app.example.com",
        maxBufferedBytes: 256 * 1024 * 1024,
        guarded: ["app"],
      },
    );
    const open = parseServerConfig(
      {
        store: "file:///backups",
        databases: { app: { public: true }, elsewhere: { public: true, store: "file:///other" } },
        objects: true,
      },
      "test",
    );
    assert.deepEqual(open.objects, {
      store: "file:///backups",
      databases: ["app"],
      public: true,
      tokens: [],
      corsOrigin: undefined,
      maxBufferedBytes: 256 * 1024 * 1024,
      guarded: [],
    });
    assert.deepEqual(
      config({ public: true, databases: ["x", "tessera://db1/srv/y.db"] }).objects?.databases,
      [
        "x",
        "tessera://db1/srv/y.db",
      ],
    );
  });

  it("refuses what it cannot serve, naming the field and never a secret", () => {
    const cases: [unknown, RegExp, Record<string, unknown>?][] = [
      [true, /objects has no tokens: give "tokens", or "public": true/],
      ["yes", /objects is "yes"; expected true, false or an object/],
      [{ public: true, tokens: ["env:OBJECTS_TOKEN"] }, /give one, not both/],
      [{ public: true, prefix: "x" }, /objects\.prefix is not a field; expected one of store, databases/],
      [{ public: true, databases: ["a/b"] }, /objects\.databases\[0\] is "a\/b"; expected a database's name/],
      [{ public: true, databases: [] }, /objects serves no database/],
      [
        { public: true, store: "file:///elsewhere" },
        /no database of "databases" reads "file:\/\/\/elsewhere"/,
      ],
      [{ tokens: ["env:NOT_SET"] }, /objects\.tokens\[0\] names the environment variable NOT_SET/],
      [
        { tokens: ["env:OBJECTS_TOKEN"], corsOrigin: "https://x.example/path" },
        /objects\.corsOrigin is "https:\/\/x\.example\/path"/,
      ],
      [
        { tokens: ["env:OBJECTS_TOKEN"], maxBufferedBytes: 0 },
        /objects\.maxBufferedBytes is 0; expected a whole number from 1/,
      ],
      // docs/SERVER.md's example once did this: a database behind a token, its objects open to anyone.
      [
        { public: true, corsOrigin: "https://app.example.com" },
        /objects are public, but they serve database "app", which databases\.app guards with tokens: anyone could read its pointer, manifests and chunks at \/v1\/objects without a token\. Give "objects\.tokens" instead of "public" \(the database's tokens, or others\), make databases\.app public/,
      ],
      [
        { public: true, databases: ["app"], store: "/backups/" },
        /objects are public, but they serve database "app"/,
      ],
      // Its stores named by a config: it may read the objects' store.
      [
        { public: true, databases: ["app"], store: "file:///backups" },
        /objects are public, but they serve database "app"/,
        { store: undefined, config: { stores: ["file:///backups"] } },
      ],
      [
        { public: true },
        /objects has no store: set "objects\.store" \(the top-level "store" names 2 stores\)/,
        {
          store: ["file:///a", "file:///b"],
        },
      ],
    ];
    for (const [objects, message, extra] of cases) {
      assert.throws(() => config(objects, extra), (error: unknown) => {
        assert.ok(error instanceof TesseraError);
        assert.equal(error.code, "CONFIG_INVALID");
        assert.match(error.message, /^Cannot load the server config \(file "server\.json"\): /);
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /from-env-secret/);
        return true;
      });
    }
  });

  it("knows one store in any of its spellings: a path or a file:// URL, with or without a trailing slash", () => {
    const spellings: [string, string][] = [
      ["/s", "file:///s"],
      ["file:///s", "/s/"],
      ["file:///s/", "file://localhost/s"],
      ["s", `file://${resolve("s")}`],
      ["./s/", resolve("s")],
      ["s3://bucket/prefix", "s3://bucket/prefix/"],
      ["https://cdn.example/store/", "https://cdn.example/store"],
    ];
    for (const [top, objects] of spellings) {
      const parsed = parseServerConfig(
        { store: top, databases: { app: { public: true } }, objects: { store: objects } },
        "test",
      );
      assert.deepEqual(parsed.objects?.databases, ["app"], `${top} and ${objects}`);
    }
    for (const [top, objects] of [["/s", "/t"], ["/s", "file:///s/t"], ["s3://bucket/a", "s3://bucket/b"]]) {
      assert.throws(
        () =>
          parseServerConfig(
            { store: top, databases: { app: { public: true } }, objects: { store: objects } },
            "test",
          ),
        /objects serves no database/,
        `${top} and ${objects}`,
      );
    }
  });

  it("refuses public objects of a database that needs a token once its tessera:// source is a name", async () => {
    const source = "tessera://h/srv/x.db";
    const { name } = await parseSource(source, { hostname: "h" });
    const parsed = parseServerConfig(
      {
        store: "file:///backups",
        databases: { x: { source, tokens: [TOKEN] }, open: { public: true } },
        objects: { public: true, databases: [name, "open"] },
      },
      "test",
    );
    await assert.rejects(openObjects(parsed.objects!, { TESSERA_HOSTNAME: "h" }), (error: unknown) => {
      assert.ok(error instanceof TesseraError);
      assert.equal(error.code, "CONFIG_INVALID");
      assert.match(
        error.message,
        new RegExp(
          `they serve database "${
            name.replace(/[.%]/g, "\\$&")
          }" \\(tessera://h/srv/x\\.db\\), which needs a token: give "objects\\.tokens"`,
        ),
      );
      return true;
    });
    const guarded = parseServerConfig(
      {
        store: "file:///backups",
        databases: { x: { source, tokens: [TOKEN] } },
        objects: { tokens: [TOKEN], databases: [name] },
      },
      "test",
    );
    assert.deepEqual((await openObjects(guarded.objects!, { TESSERA_HOSTNAME: "h" })).databases, [name]);
  });

  it("opens the objects' store, resolving tessera:// sources to names in the store", async () => {
    const s = await makeStored("config");
    try {
      const parsed = parseServerConfig(
        {
          store: `file://${join(s.dir, "store")}`,
          databases: { app: { public: true } },
          objects: { databases: ["app", "tessera://h/srv/x.db"] },
        },
        "test",
      );
      const options = await openServerDatabases(parsed);
      assert.equal(options.objects?.public, true);
      assert.equal(options.objects?.databases[0], "app");
      assert.match(options.objects?.databases[1] ?? "", /^[0-9a-f]{4}-h%3A%2Fsrv%2Fx\.db$/);
      const app = createApp(options);
      try {
        const pointer = await app.fetch(new Request(`http://server/v1/objects/${pointerKey("app")}`));
        assert.equal(pointer.status, 200);
        assert.deepEqual(
          new Uint8Array(await pointer.arrayBuffer()),
          (await bytesOf(s.store, pointerKey("app"))).body,
        );
      } finally {
        await app.shutdown();
      }
    } finally {
      await removeDir(s.dir);
    }
  });
});

describe("tessera serve --objects", () => {
  it("serves the --store's objects to the --token holders, with the --cors-origin", async () => {
    const s = await makeStored("cli");
    const server = startInteractive(
      "src/cli/main.ts",
      [
        "serve",
        "--store",
        `file://${join(s.dir, "store")}`,
        "--db",
        "app",
        "--token",
        "env:OBJECTS_TEST_TOKEN",
        "--objects",
        "--cors-origin",
        "https://app.example.com",
        "--port",
        "0",
        "--json",
      ],
      { env: { OBJECTS_TEST_TOKEN: TOKEN } },
    );
    try {
      const { url, objects } = JSON.parse((await server.next(/\{"event":"listening".*\}\n/)).trim());
      assert.equal(objects, `${url}/v1/objects`);
      const key = pointerKey("app");
      const refused = await fetch(`${objects}/${key}`);
      assert.equal(refused.status, 401);
      await refused.body?.cancel();
      const response = await fetch(`${objects}/${key}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("cache-control"), "private, no-cache");
      assert.equal(response.headers.get("access-control-allow-origin"), "https://app.example.com");
      assert.deepEqual(new Uint8Array(await response.arrayBuffer()), (await bytesOf(s.store, key)).body);
      const replica = await openReplica("app", {
        store: new HttpStore(objects, { headers: { authorization: `Bearer ${TOKEN}` } }),
        pollIntervalMs: 0,
      });
      try {
        assert.equal((await replica.execute("SELECT count(*) AS n FROM t")).rows[0]!.n, 3000);
      } finally {
        replica.close();
      }
      server.signal("SIGTERM");
      assert.equal(await server.exited, 0, server.stderr());
    } finally {
      await server.stop();
      await removeDir(s.dir);
    }
  });

  it("refuses --cors-origin without --objects, and a bad origin, as usage errors", async () => {
    const { runScript } = await import("../_helpers/run.ts");
    for (
      const [args, message] of [
        [["--cors-origin", "*"], /--cors-origin needs --objects/],
        [
          ["--objects", "--cors-origin", "https://x.example/"],
          /--cors-origin "https:\/\/x\.example\/" is not/,
        ],
        [["-c", "{}", "--objects"], /give either -c CONFIG or .*--objects/],
      ] as const
    ) {
      const extra = args[0] === "-c" ? [] : ["--store", "file:///nowhere", "--db", "app", "--public"];
      const result = await runScript("src/cli/main.ts", ["serve", ...extra, ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
    }
  });
});
