/**
 * One store's catalogue: a database's pointer, the manifest a pointer or a sequence names (checked: the
 * envelope, every field, the identity, and against the pointer's SHA-256), its history, and the databases
 * the store holds. Private to `catalog.ts`, which exports it with the choices made across stores.
 *
 * @module
 */

import { sha256Hex, toHex } from "../bytes.ts";
import { TesseraError } from "../errors.ts";
import { mapLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";
import { decodeManifest, decodePointer } from "./codec.ts";
import { DATABASES_PREFIX, manifestKey, manifestsPrefix, parseManifestKey, pointerKey } from "./keys.ts";
import { isDatabaseName } from "./naming.ts";
import type { Manifest, Pointer } from "./types.ts";

/** Options of the functions that read a store. */
export interface LoadOptions {
  /** Cancels the reads; the call then rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** A manifest and where it came from. */
export interface LoadedManifest {
  manifest: Manifest;
  /** The manifest object's bytes, as stored. */
  manifestBytes: Uint8Array;
  /** The store key, or the file path, it was read from. */
  key: string;
}

/** The newest manifest of a database and the pointer that named it. */
export interface LatestManifest extends LoadedManifest {
  pointer: Pointer;
}

/** One kept snapshot of a database, as its history lists it. */
export interface HistoryEntry {
  sequence: number;
  key: string;
  /** The manifest object's size in bytes. */
  size: number;
  /** When the store last wrote the manifest object, where it says. */
  lastModified: Date | undefined;
}

/** One kept snapshot with what its manifest says of it. */
export interface SnapshotEntry extends HistoryEntry {
  /** When the writer took the snapshot (the manifest's `createdMs`). */
  createdMs: number;
  imageLength: number;
}

/** How many manifests are read at once. */
const READ_CONCURRENCY = 8;

/** What the `NOT_FOUND` message of a database without a snapshot tells the user to do, unless told. */
export const DEFAULT_HINT = "run `tessera sync` first, or check --hostname/--source-path/--name";

/**
 * Reads the pointer of database `name`: `undefined` when the store has none. Throws `TesseraError`
 * `CORRUPT_POINTER` naming the key and the store when its bytes are damaged, and the store's error when it
 * cannot be read.
 *
 * @example Reading a pointer
 * ```ts
 * import { readPointer } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * console.log(await readPointer(new MemoryStore(), "app")); // undefined
 * ```
 */
export async function readPointer(
  store: BlobStore,
  name: string,
  options: LoadOptions = {},
): Promise<Pointer | undefined> {
  const key = pointerKey(name);
  const got = await store.get(key, { signal: options.signal });
  if (got.status !== "ok") return undefined;
  return await decodePointer(got.body, { what: `${key} in ${store.description}` });
}

/** What {@linkcode pollPointer} read. */
export type PointerPoll =
  | { status: "not_modified" }
  | { status: "not_found" }
  | { status: "ok"; pointer: Pointer; etag: string };

/**
 * Reads the pointer of database `name` unless its ETag is still `options.etag`, as a replica polls it.
 * Throws as {@linkcode readPointer} does.
 *
 * @example Polling a pointer
 * ```ts
 * import { pollPointer } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * console.log((await pollPointer(new MemoryStore(), "app")).status); // "not_found"
 * ```
 */
export async function pollPointer(
  store: BlobStore,
  name: string,
  options: LoadOptions & { etag?: string | undefined } = {},
): Promise<PointerPoll> {
  const key = pointerKey(name);
  const got = await store.get(key, { ifNoneMatch: options.etag, signal: options.signal });
  if (got.status !== "ok") return { status: got.status };
  const pointer = await decodePointer(got.body, { what: `${key} in ${store.description}` });
  return { status: "ok", pointer, etag: got.etag };
}

/**
 * True when the store holds a pointer for database `name` (one `HEAD`; the pointer is not decoded).
 *
 * @example
 * ```ts
 * import { hasPointer } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * console.log(await hasPointer(new MemoryStore(), "app")); // false
 * ```
 */
export async function hasPointer(
  store: BlobStore,
  name: string,
  options: LoadOptions = {},
): Promise<boolean> {
  return (await store.head(pointerKey(name), { signal: options.signal })).status === "ok";
}

/**
 * Loads the newest manifest of database `name`: its pointer, then the manifest it names, checked against
 * the SHA-256 the pointer holds. Throws `TesseraError` `NOT_FOUND` saying what to do when there is no
 * pointer.
 *
 * @example Restoring the newest snapshot
 * ```ts
 * import { loadLatest } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * await loadLatest(new MemoryStore(), "app").catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function loadLatest(
  store: BlobStore,
  name: string,
  options: LoadOptions = {},
): Promise<LatestManifest> {
  const pointer = await readPointer(store, name, options);
  if (pointer === undefined) throw noSnapshot(name, [store], DEFAULT_HINT);
  return { ...await loadPointed(store, name, pointer, options), pointer };
}

/**
 * Loads the manifest `pointer` names, checked against the SHA-256 the pointer holds: what a reader does
 * once it has read a pointer (a replica polls the pointer itself, conditionally).
 *
 * @example Following a pointer
 * ```ts
 * import { loadPointed } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * const pointer = { sequence: 1, manifestSha256: new Uint8Array(32), createdMs: 0, writer: "" };
 * await loadPointed(new MemoryStore(), "app", pointer).catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function loadPointed(
  store: BlobStore,
  name: string,
  pointer: Pointer,
  options: LoadOptions = {},
): Promise<LoadedManifest> {
  const key = manifestKey(name, pointer.sequence);
  const manifestBytes = await fetchManifest(store, key, name, pointer.sequence, options.signal);
  const actual = await sha256Hex(manifestBytes);
  const expected = toHex(pointer.manifestSha256);
  if (actual !== expected) {
    throw new TesseraError(
      "CHECKSUM_MISMATCH",
      `Cannot load manifest ${key} in ${store.description}: its SHA-256 is ${actual}, but ${
        pointerKey(name)
      } ` +
        `says ${expected}; the manifest or the pointer is damaged`,
    );
  }
  const manifest = await decodeManifest(manifestBytes, { what: key });
  checkIdentity(manifest, name, pointer.sequence, `${key} in ${store.description}`);
  return { manifest, manifestBytes, key };
}

/**
 * Loads the manifest of snapshot `sequence` of database `name`, for a point-in-time restore.
 *
 * @example Loading one snapshot
 * ```ts
 * import { loadSequence } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * await loadSequence(new MemoryStore(), "app", 3).catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function loadSequence(
  store: BlobStore,
  name: string,
  sequence: number,
  options: LoadOptions = {},
): Promise<LoadedManifest> {
  const key = manifestKey(name, sequence);
  const manifestBytes = await fetchManifest(store, key, name, sequence, options.signal);
  const manifest = await decodeManifest(manifestBytes, { what: key });
  checkIdentity(manifest, name, sequence, `${key} in ${store.description}`);
  return { manifest, manifestBytes, key };
}

/**
 * The names of the databases in `store` (those with any key under `dbs/<name>/`, `<name>` a valid database
 * name), in key order; with `withPointer`, only those whose pointer the store holds.
 *
 * @example
 * ```ts
 * import { listDatabases } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * console.log(await listDatabases(new MemoryStore())); // []
 * ```
 */
export async function listDatabases(
  store: BlobStore,
  options: LoadOptions & {
    /** Leave out databases without a pointer (a first publish in progress, a lease alone). @default {false} */
    withPointer?: boolean | undefined;
  } = {},
): Promise<string[]> {
  const { signal } = options;
  const names: string[] = [];
  for await (const item of store.list(DATABASES_PREFIX, { delimiter: "/", signal })) {
    if (item.type !== "prefix") continue;
    const name = item.prefix.slice(DATABASES_PREFIX.length, -1);
    if (!isDatabaseName(name)) continue;
    if (options.withPointer && !await hasPointer(store, name, { signal })) continue;
    names.push(name);
  }
  return names;
}

/** One manifest of {@linkcode listManifests}. */
export interface ManifestEntry extends HistoryEntry {
  /** The database it belongs to. */
  name: string;
}

/**
 * Lists the manifests of every database in `store`, in key order (by database, then sequence).
 *
 * @example Counting the manifests of a store
 * ```ts
 * import { listManifests } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * let count = 0;
 * for await (const _ of listManifests(new MemoryStore())) count++;
 * console.log(count); // 0
 * ```
 */
export function listManifests(store: BlobStore, options: LoadOptions = {}): AsyncIterable<ManifestEntry> {
  return manifestEntries(store, DATABASES_PREFIX, undefined, options.signal);
}

/**
 * Lists the snapshots of database `name` the store keeps, oldest first.
 *
 * @example Listing a database's history
 * ```ts
 * import { listHistory } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * console.log(await listHistory(new MemoryStore(), "app")); // []
 * ```
 */
export async function listHistory(
  store: BlobStore,
  name: string,
  options: LoadOptions = {},
): Promise<HistoryEntry[]> {
  const entries: HistoryEntry[] = [];
  for await (
    const { name: _, ...entry } of manifestEntries(store, manifestsPrefix(name), name, options.signal)
  ) {
    entries.push(entry);
  }
  return entries.sort((a, b) => a.sequence - b.sequence);
}

/**
 * Lists the snapshots of database `name`, oldest first, reading each manifest for its creation time and
 * image length. A manifest deleted while the list is read (a prune running) is left out.
 *
 * @example Listing snapshots with their times
 * ```ts
 * import { listSnapshots } from "./catalog.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * console.log(await listSnapshots(new MemoryStore(), "app")); // []
 * ```
 */
export async function listSnapshots(
  store: BlobStore,
  name: string,
  options: LoadOptions = {},
): Promise<SnapshotEntry[]> {
  const history = await listHistory(store, name, options);
  const found = await mapLimit(history, async (entry): Promise<SnapshotEntry | undefined> => {
    try {
      const { manifest } = await loadSequence(store, name, entry.sequence, options);
      return { ...entry, createdMs: manifest.createdMs, imageLength: manifest.imageLength };
    } catch (error) {
      if (!(error instanceof TesseraError && error.code === "NOT_FOUND")) throw error;
      return undefined;
    }
  }, { concurrency: READ_CONCURRENCY, signal: options.signal });
  return found.filter((e): e is SnapshotEntry => e !== undefined);
}

/** The `NOT_FOUND` error of database `name` without a snapshot in any of `stores`. */
export function noSnapshot(name: string, stores: readonly BlobStore[], hint: string): TesseraError {
  return new TesseraError(
    "NOT_FOUND",
    `No snapshot of database "${name}" in ${storeList(stores, "or")}: ${hint}`,
  );
}

/** The stores' descriptions, as a message lists them. */
export function storeList(stores: readonly BlobStore[], conjunction: "and" | "or"): string {
  return stores.map((s) => s.description).join(` ${conjunction} `);
}

async function* manifestEntries(
  store: BlobStore,
  prefix: string,
  name: string | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<ManifestEntry> {
  for await (const item of store.list(prefix, { signal })) {
    if (item.type !== "object") continue;
    const parsed = parseManifestKey(item.key);
    if (parsed === undefined || (name !== undefined && parsed.name !== name)) continue;
    yield {
      name: parsed.name,
      sequence: parsed.sequence,
      key: item.key,
      size: item.size,
      lastModified: item.lastModified,
    };
  }
}

async function fetchManifest(
  store: BlobStore,
  key: string,
  name: string,
  sequence: number,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const got = await store.get(key, { signal });
  if (got.status !== "ok") {
    throw new TesseraError(
      "NOT_FOUND",
      `Cannot load snapshot ${sequence} of database "${name}": ${key} is missing from ${store.description} ` +
        `(a retention policy may have pruned it)`,
    );
  }
  return got.body;
}

function checkIdentity(manifest: Manifest, name: string, sequence: number, what: string): void {
  if (manifest.identity.name !== name || manifest.sequence !== sequence) {
    throw new TesseraError(
      "CORRUPT_MANIFEST",
      `Cannot load manifest ${what}: it describes database "${manifest.identity.name}" snapshot ` +
        `${manifest.sequence}, not "${name}" snapshot ${sequence}`,
    );
  }
}
