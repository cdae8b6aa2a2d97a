/**
 * Fault injection for replicator tests: a store that can be switched off (every call fails as a store
 * outage would) and back on, in front of a real store. It also records the keys it wrote.
 *
 * @module
 */

import { restoreImage } from "../../src/restore/restore.ts";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { TesseraError } from "../../src/errors.ts";
import { decodePointer } from "../../src/manifest/codec.ts";
import { pointerKey } from "../../src/manifest/keys.ts";
import type { Pointer } from "../../src/manifest/types.ts";
import { loadSequence } from "../../src/manifest/catalog.ts";
import type {
  BlobStore,
  GetOptions,
  GetResult,
  HeadResult,
  ListItem,
  ListOptions,
  PutOptions,
  StoreCallOptions,
} from "../../src/store/types.ts";
import { checkWriterDb, type WriterState } from "../_helpers/sqlite_check.ts";
import { join } from "node:path";

/** A store that fails every call while `down`. */
export class OutageStore implements BlobStore {
  down = false;
  readonly puts: string[] = [];
  readonly #inner: BlobStore;

  constructor(inner: BlobStore) {
    this.#inner = inner;
  }

  get description(): string {
    return this.#inner.description;
  }

  get capabilities(): BlobStore["capabilities"] {
    return this.#inner.capabilities;
  }

  #check(op: string, key: string): void {
    if (this.down) throw new TesseraError("STORE_IO", `Cannot ${op} "${key}" in ${this.description}: outage`);
  }

  async get(key: string, options?: GetOptions): Promise<GetResult> {
    this.#check("get", key);
    return await this.#inner.get(key, options);
  }

  async head(key: string, options?: StoreCallOptions): Promise<HeadResult> {
    this.#check("head", key);
    return await this.#inner.head(key, options);
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }> {
    this.#check("put", key);
    const result = await this.#inner.put(key, body, options);
    this.puts.push(key);
    return result;
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<ListItem> {
    this.#check("list", prefix);
    yield* this.#inner.list(prefix, options);
  }

  async delete(key: string, options?: StoreCallOptions): Promise<void> {
    this.#check("delete", key);
    await this.#inner.delete(key, options);
  }
}

/** The pointer of database `name` in `store`, or undefined when there is none. */
export async function pointerOf(store: BlobStore, name: string): Promise<Pointer | undefined> {
  const got = await store.get(pointerKey(name));
  return got.status === "ok" ? await decodePointer(got.body) : undefined;
}

/** The sequence the pointer of `name` names in `store`, 0 when there is none. */
export async function pointerSequence(store: BlobStore, name: string): Promise<number> {
  return (await pointerOf(store, name))?.sequence ?? 0;
}

/** Restores snapshot `sequence` of `name` from `store` into `dir` and reads the writer's state from it. */
export async function restoredState(
  store: BlobStore,
  name: string,
  sequence: number,
  dir: string,
): Promise<WriterState> {
  const { manifest } = await loadSequence(store, name, sequence);
  const out = join(dir, `restored-${sequence}-${crypto.randomUUID().slice(0, 6)}.db`);
  await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  return await checkWriterDb(out);
}

/** Waits until `predicate` holds, polling with ref'd timers; throws after `timeoutMs`. */
export async function waitUntil(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
