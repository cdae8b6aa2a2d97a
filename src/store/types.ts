/**
 * The one storage interface every backend implements. `docs/STORE_CONTRACT.md` states the contract in
 * full; `test/store/conformance.ts` checks it against every backend.
 *
 * @module
 */

/** Options every store call takes. */
export interface StoreCallOptions {
  /** Cancels the call; it then rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

import type { ByteRange } from "../net/range.ts";

/** A byte range: `length` bytes from `offset`, or to the end when `length` is absent. */
export type Range = ByteRange;

/** Options of {@linkcode BlobStore.get}. */
export interface GetOptions extends StoreCallOptions {
  /** Read only these bytes. A range past the end of the object reads what exists, possibly nothing. */
  range?: Range | undefined;
  /** Answer `not_modified` when the object's ETag still equals this one. */
  ifNoneMatch?: string | undefined;
}

/** What a store knows of an object without reading it. */
export interface BlobInfo {
  key: string;
  /** The whole object's size in bytes. */
  size: number;
  /** Opaque; changes whenever the object's bytes change. */
  etag: string;
  lastModified: Date | undefined;
}

/** The result of {@linkcode BlobStore.get}: not-found is a result, not an exception. */
export type GetResult =
  | ({ status: "ok"; body: Uint8Array } & BlobInfo)
  | { status: "not_found" }
  | { status: "not_modified"; etag: string };

/** The result of {@linkcode BlobStore.head}. */
export type HeadResult = ({ status: "ok" } & BlobInfo) | { status: "not_found" };

/** Options of {@linkcode BlobStore.put}. */
export interface PutOptions extends StoreCallOptions {
  /** `"*"`: write only when the key does not exist yet, else throw `PRECONDITION_FAILED`. Honoured by
   * stores whose `capabilities.conditionalPut` is true; S3-compatible servers may ignore it. */
  ifNoneMatch?: "*" | undefined;
}

/** Options of {@linkcode BlobStore.list}. */
export interface ListOptions extends StoreCallOptions {
  /** With `"/"`, keys that hold a `/` after the prefix are rolled up into one `prefix` item. */
  delimiter?: "/" | undefined;
}

/** One item of a listing. */
export type ListItem = ({ type: "object" } & BlobInfo) | { type: "prefix"; prefix: string };

/** What a store can do. */
export interface StoreCapabilities {
  /** put and delete work. */
  write: boolean;
  /** list works. */
  list: boolean;
  /** put honours `ifNoneMatch: "*"` atomically. */
  conditionalPut: boolean;
}

/**
 * A flat namespace of immutable-by-convention objects: S3, a local directory, memory, a read-only HTTP
 * host, OPFS.
 */
export interface BlobStore {
  /** Where the store points, for messages; never holds credentials. */
  readonly description: string;
  readonly capabilities: Readonly<StoreCapabilities>;
  /** Reads an object or a range of it. */
  get(key: string, options?: GetOptions): Promise<GetResult>;
  /** Reads an object's size and ETag. */
  head(key: string, options?: StoreCallOptions): Promise<HeadResult>;
  /** Writes an object whole and atomically: readers see the old bytes or the new, never a mix. */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }>;
  /** Lists objects whose keys start with `prefix`, in code point order of their keys. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ListItem>;
  /** Deletes an object; deleting a missing key succeeds. */
  delete(key: string, options?: StoreCallOptions): Promise<void>;
}

/** The stores an option names: none, one, or a list (copied). */
export function storeList(option: BlobStore | readonly BlobStore[] | undefined): BlobStore[] {
  if (option === undefined) return [];
  return Array.isArray(option) ? [...option] : [option as BlobStore];
}
