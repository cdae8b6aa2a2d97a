/**
 * Finding the manifest to restore: the newest one a pointer names, one sequence of a database's history,
 * or a manifest file on disk. Every manifest is checked (envelope hash, fields), and one reached through a
 * pointer also against the hash the pointer holds.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { toHex } from "../bytes.ts";
import { TesseraError } from "../errors.ts";
import { decodeManifest, decodePointer } from "../manifest/codec.ts";
import { manifestKey, manifestsPrefix, parseManifestKey, pointerKey } from "../manifest/keys.ts";
import type { Manifest, Pointer } from "../manifest/types.ts";
import type { BlobStore } from "../store/types.ts";

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

/**
 * Loads the newest manifest of database `name`: its pointer, then the manifest it names, checked against
 * the SHA-256 the pointer holds.
 *
 * @example Restoring the newest snapshot
 * ```ts
 * import { loadLatest } from "./manifest_source.ts";
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
  const pKey = pointerKey(name);
  const got = await store.get(pKey, { signal: options.signal });
  if (got.status !== "ok") {
    throw new TesseraError(
      "NOT_FOUND",
      `No snapshot of database "${name}" in ${store.description}: run \`tessera sync\` first, or check ` +
        `--hostname/--source-path/--name`,
    );
  }
  const pointer = await decodePointer(got.body, { what: pKey });
  return { ...await loadPointed(store, name, pointer, options), pointer };
}

/**
 * Loads the manifest `pointer` names, checked against the SHA-256 the pointer holds: what a reader does
 * once it has read a pointer (a replica polls the pointer itself, conditionally).
 *
 * @example Following a pointer
 * ```ts
 * import { loadPointed } from "./manifest_source.ts";
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
  const pKey = pointerKey(name);
  const key = manifestKey(name, pointer.sequence);
  const manifestBytes = await fetchManifest(store, key, name, pointer.sequence, options.signal);
  const actual = createHash("sha256").update(manifestBytes).digest();
  if (toHex(actual) !== toHex(pointer.manifestSha256)) {
    throw new TesseraError(
      "CHECKSUM_MISMATCH",
      `Cannot load manifest ${key} in ${store.description}: its SHA-256 is ${toHex(actual)}, but ${pKey} ` +
        `says ${toHex(pointer.manifestSha256)}; the manifest or the pointer is damaged`,
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
 * import { loadSequence } from "./manifest_source.ts";
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
 * Loads a manifest from a file, as `tessera restore --manifest FILE` reads one copied out of a store.
 *
 * @example Loading a copied manifest
 * ```ts
 * import { loadManifestFile } from "./manifest_source.ts";
 *
 * await loadManifestFile("/nonexistent/manifest").catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function loadManifestFile(path: string): Promise<LoadedManifest> {
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = new Uint8Array(await readFile(path));
  } catch (error) {
    const code = (error as { code?: string } | null)?.code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new TesseraError("NOT_FOUND", `Cannot read manifest file "${path}": it does not exist`, {
        cause: error,
      });
    }
    throw new TesseraError("STORE_IO", `Cannot read manifest file "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  const manifest = await decodeManifest(manifestBytes, { what: path });
  return { manifest, manifestBytes, key: path };
}

/**
 * Lists the snapshots of database `name` the store keeps, oldest first.
 *
 * @example Listing a database's history
 * ```ts
 * import { listHistory } from "./manifest_source.ts";
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
  for await (const item of store.list(manifestsPrefix(name), { signal: options.signal })) {
    if (item.type !== "object") continue;
    const parsed = parseManifestKey(item.key);
    if (parsed === undefined || parsed.name !== name) continue;
    entries.push({
      sequence: parsed.sequence,
      key: item.key,
      size: item.size,
      lastModified: item.lastModified,
    });
  }
  return entries.sort((a, b) => a.sequence - b.sequence);
}

/** One kept snapshot with what its manifest says of it. */
export interface SnapshotEntry extends HistoryEntry {
  /** When the writer took the snapshot (the manifest's `createdMs`). */
  createdMs: number;
  imageLength: number;
}

/** How many manifests {@linkcode listSnapshots} reads at once. */
const READ_CONCURRENCY = 8;

/**
 * Lists the snapshots of database `name`, oldest first, reading each manifest for its creation time and
 * image length. A manifest deleted while the list is read (a prune running) is left out.
 *
 * @example Listing snapshots with their times
 * ```ts
 * import { listSnapshots } from "./manifest_source.ts";
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
  const found: (SnapshotEntry | undefined)[] = new Array(history.length);
  let next = 0;
  const worker = async () => {
    while (next < history.length) {
      const k = next++;
      const entry = history[k] as HistoryEntry;
      try {
        const { manifest } = await loadSequence(store, name, entry.sequence, options);
        found[k] = { ...entry, createdMs: manifest.createdMs, imageLength: manifest.imageLength };
      } catch (error) {
        if (!(error instanceof TesseraError && error.code === "NOT_FOUND")) throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, history.length) }, worker));
  return found.filter((e): e is SnapshotEntry => e !== undefined);
}

/**
 * Loads the newest snapshot of database `name` taken at or before `atMs` (ms since 1970): the highest
 * sequence whose manifest's `createdMs` is at most `atMs`. Throws `TesseraError` `NOT_FOUND` naming the
 * database and its earliest snapshot time when there is none.
 *
 * @example Restoring the state of an hour ago
 * ```ts
 * import { loadAt } from "./manifest_source.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * await loadAt(new MemoryStore(), "app", Date.now() - 3_600_000).catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function loadAt(
  store: BlobStore,
  name: string,
  atMs: number,
  options: LoadOptions = {},
): Promise<LoadedManifest> {
  const snapshots = await listSnapshots(store, name, options);
  const before = snapshots.filter((s) => s.createdMs <= atMs);
  const chosen = before[before.length - 1];
  if (chosen === undefined) {
    const at = new Date(atMs).toISOString();
    if (snapshots.length === 0) {
      throw new TesseraError(
        "NOT_FOUND",
        `No snapshot of database "${name}" in ${store.description}: run \`tessera sync\` first, or check ` +
          `--hostname/--source-path/--name`,
      );
    }
    const earliest = Math.min(...snapshots.map((s) => s.createdMs));
    throw new TesseraError(
      "NOT_FOUND",
      `No snapshot of database "${name}" in ${store.description} was taken at or before ${at}: the ` +
        `earliest kept is from ${new Date(earliest).toISOString()}`,
    );
  }
  return await loadSequence(store, name, chosen.sequence, options);
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
