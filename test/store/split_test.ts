import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HttpStore } from "../../src/store/http.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { SplitStore } from "../../src/store/split.ts";
import type { BlobStore, ListItem } from "../../src/store/types.ts";
import { storeConformance } from "./conformance.ts";

storeConformance("split (chunks/ over two memory stores)", () => {
  const store = new SplitStore({ matching: new MemoryStore(), rest: new MemoryStore() });
  return Promise.resolve({ store, writer: store, teardown: () => Promise.resolve() });
});

// The suite names its keys c1-..., c2-..., so this split sends some of its tests to each side.
storeConformance("split (c1 over two memory stores)", () => {
  const store = new SplitStore({ prefix: "c1", matching: new MemoryStore(), rest: new MemoryStore() });
  return Promise.resolve({ store, writer: store, teardown: () => Promise.resolve() });
});

const bytes = (text: string) => new TextEncoder().encode(text);

async function names(store: BlobStore, prefix: string, delimiter?: "/"): Promise<string[]> {
  const out: string[] = [];
  for await (const item of store.list(prefix, delimiter ? { delimiter } : {})) out.push(show(item));
  return out;
}

function show(item: ListItem): string {
  return item.type === "object" ? item.key : `${item.prefix}*`;
}

function split(prefix?: string) {
  const matching = new MemoryStore();
  const rest = new MemoryStore();
  return { matching, rest, store: new SplitStore({ prefix, matching, rest }) };
}

describe("SplitStore", () => {
  it("writes, reads and deletes keys under the prefix in one store and all others in the other", async () => {
    const { matching, rest, store } = split();
    await store.put("chunks/ab/abcd", bytes("chunk"));
    await store.put("dbs/app/pointer", bytes("pointer"));
    assert.equal((await matching.head("chunks/ab/abcd")).status, "ok");
    assert.equal((await rest.head("chunks/ab/abcd")).status, "not_found");
    assert.equal((await rest.head("dbs/app/pointer")).status, "ok");
    assert.equal((await matching.head("dbs/app/pointer")).status, "not_found");
    const got = await store.get("chunks/ab/abcd");
    assert.ok(got.status === "ok");
    assert.deepEqual(got.body, bytes("chunk"));
    await store.delete("chunks/ab/abcd");
    assert.equal((await matching.head("chunks/ab/abcd")).status, "not_found");
    assert.equal((await store.head("dbs/app/pointer")).status, "ok");
  });

  it("lists both stores as one namespace in key order", async () => {
    const { matching, rest, store } = split();
    for (const key of ["a", "dbs/x/pointer", "dbs/y/pointer", "z"]) await rest.put(key, bytes(key));
    for (const key of ["chunks/00/1", "chunks/ff/2"]) await matching.put(key, bytes(key));
    assert.deepEqual(await names(store, ""), [
      "a",
      "chunks/00/1",
      "chunks/ff/2",
      "dbs/x/pointer",
      "dbs/y/pointer",
      "z",
    ]);
    assert.deepEqual(await names(store, "", "/"), ["a", "chunks/*", "dbs/*", "z"]);
    assert.deepEqual(await names(store, "c"), ["chunks/00/1", "chunks/ff/2"]);
    assert.deepEqual(await names(store, "chunks/", "/"), ["chunks/00/*", "chunks/ff/*"]);
    assert.deepEqual(await names(store, "dbs/"), ["dbs/x/pointer", "dbs/y/pointer"]);
  });

  it("hides objects that lie on the wrong side of the split, in reads and listings", async () => {
    const { matching, rest, store } = split();
    await rest.put("chunks/00/stray", bytes("stray"));
    await matching.put("dbs/stray", bytes("stray"));
    await matching.put("chunks/00/1", bytes("1"));
    assert.equal((await store.get("chunks/00/stray")).status, "not_found");
    assert.equal((await store.head("dbs/stray")).status, "not_found");
    assert.deepEqual(await names(store, ""), ["chunks/00/1"]);
    assert.deepEqual(await names(store, "", "/"), ["chunks/*"]);
  });

  it("rolls a folder that both stores hold into one item when the prefix holds a slash", async () => {
    const { matching, rest, store } = split("a/b/");
    assert.deepEqual(await names(store, "", "/"), []);
    await rest.put("a/b/stray", bytes("stray"));
    assert.deepEqual(await names(store, "", "/"), [], "a folder holding only stray keys is not listed");
    await matching.put("a/b/1", bytes("1"));
    assert.deepEqual(await names(store, "", "/"), ["a/*"]);
    await rest.put("a/c", bytes("c"));
    await rest.put("b", bytes("b"));
    assert.deepEqual(await names(store, "", "/"), ["a/*", "b"]);
    assert.deepEqual(await names(store, "a/", "/"), ["a/b/*", "a/c"]);
    assert.deepEqual(await names(store, "a/"), ["a/b/1", "a/c"]);
    await store.delete("a/b/1");
    assert.deepEqual(await names(store, "", "/"), ["a/*", "b"], "a/c still holds the folder");
  });

  it("can write and list only when both stores can", () => {
    const writable = split().store;
    assert.deepEqual(writable.capabilities, { write: true, list: true, conditionalPut: true });
    const store = new SplitStore({
      matching: new HttpStore("https://cdn.example.com/chunks-host"),
      rest: new MemoryStore(),
    });
    assert.deepEqual(store.capabilities, { write: false, list: false, conditionalPut: false });
    assert.equal(store.description, "memory (chunks/* in https://cdn.example.com/chunks-host)");
  });

  it("rejects an empty or invalid routing prefix", () => {
    const stores = { matching: new MemoryStore(), rest: new MemoryStore() };
    assert.throws(() => new SplitStore({ ...stores, prefix: "" }), TypeError);
    assert.throws(() => new SplitStore({ ...stores, prefix: "/abs" }), { code: "INVALID_KEY" });
  });
});
