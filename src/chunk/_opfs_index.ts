/**
 * The index of an `OpfsChunkCache`'s directory: each chunk's size and last use, the file that keeps them
 * (with its own SHA-256), the scan that rebuilds it from the chunk files, eviction, and the recheck of a
 * damaged file. Private to the OPFS cache; callers hold the cache's lock.
 *
 * @module
 */

import { sha256 } from "../bytes.ts";
import { CHUNK_HEADER_LENGTH, decodeChunk, MAX_CHUNK_LENGTH } from "./codec.ts";
import { hexToId, ID_LENGTH, idsEqual } from "./ids.ts";
import { isNamed, type OpfsDirectoryHandle, readChunkFile, removeFile, writeFile } from "./_opfs_files.ts";

/** The index file's name in the cache's directory. */
export const INDEX_FILE = "tessera-index";
/** The name of a chunk file: its id in hex. */
const ID_FILE = /^[0-9a-f]{64}$/;

/** True when a chunk file of `size` bytes can hold a chunk object: a header and 1 byte to 1 MiB. */
function chunkFileSizeOk(size: number): boolean {
  return size > CHUNK_HEADER_LENGTH && size <= CHUNK_HEADER_LENGTH + MAX_CHUNK_LENGTH;
}

interface Entry {
  size: number;
  stamp: number;
  /** The id's bytes, kept so writing the index converts no hex. */
  id: Uint8Array;
}

/**
 * Each chunk's size and last use, and their total. Uses are ordered by a counter (`stamp`) kept with them,
 * and the map is kept in that order (a use moves an entry to the end), so the least recently used come
 * first without sorting.
 */
export class Index {
  readonly #entries = new Map<string, Entry>();
  /** The stamp the next use gets. */
  next = 1;
  /** The bytes of every chunk file listed. */
  total = 0;
  /** Counts every change, so a caller can tell whether there is anything to write. */
  changes = 0;

  get size(): number {
    return this.#entries.size;
  }

  get(name: string): number | undefined {
    return this.#entries.get(name)?.size;
  }

  /** Entries from least to most recently used. */
  entries(): IterableIterator<[string, Entry]> {
    return this.#entries.entries();
  }

  /** Lists `name` as the most recently used. */
  add(name: string, size: number): void {
    const entry = this.#entries.get(name);
    this.#append(name, { size, stamp: this.next++, id: entry?.id ?? idBytes(name) });
  }

  touch(name: string): void {
    const entry = this.#entries.get(name);
    if (entry) this.#append(name, { ...entry, stamp: this.next++ });
  }

  // `entry.stamp` must be above every stamp so far.
  #append(name: string, entry: Entry): void {
    this.delete(name);
    this.#entries.set(name, entry);
    this.total += entry.size;
    this.changes++;
  }

  delete(name: string): void {
    const entry = this.#entries.get(name);
    if (!entry) return;
    this.#entries.delete(name);
    this.total -= entry.size;
    this.changes++;
  }

  /** An index of `entries`, least recently used first. */
  static from(entries: readonly [string, Entry][], next: number): Index {
    const index = new Index();
    for (const [name, entry] of entries) index.#append(name, entry);
    index.next = next;
    index.changes = 0;
    return index;
  }

  /** Lists files the index lacks as older than every entry, in the order given. */
  prepend(files: readonly { name: string; size: number }[]): void {
    if (files.length === 0) return;
    const rest = [...this.#entries];
    let stamp = (rest[0]?.[1].stamp ?? this.next) - files.length;
    this.#entries.clear();
    for (const { name, size } of files) {
      this.#entries.set(name, { size, stamp: stamp++, id: idBytes(name) });
      this.total += size;
    }
    for (const [name, entry] of rest) this.#entries.set(name, entry);
    this.changes++;
  }

  /** The least recently used chunks, oldest first, holding at least `bytes` (all there are, if fewer). */
  oldest(bytes: number, keep: ReadonlySet<string> = new Set()): string[] {
    const names: string[] = [];
    let freed = 0;
    for (const [name, { size }] of this.#entries) {
      if (freed >= bytes) break;
      if (keep.has(name)) continue;
      names.push(name);
      freed += size;
    }
    return names;
  }
}

/** What a cache knows of the index file it last read or wrote: its size and its last 32 bytes (a hash). */
export interface IndexMark {
  size: number;
  hash: Uint8Array;
}

// The index file: "TSCI", version 1, 3 zero bytes, the entry count (u32) and the next stamp (f64); then per
// chunk, least recently used first, its id (32 bytes), file size (u32) and last use (f64); then the SHA-256
// of all that. Little-endian.
const INDEX_MAGIC = [0x54, 0x53, 0x43, 0x49];
const INDEX_HEADER = 20;
const INDEX_ENTRY = ID_LENGTH + 12;
const HASH_LENGTH = 32;

/**
 * True when the index file is still the one `mark` describes: its size and its trailing SHA-256 (which
 * covers every byte before it) are the same. Reads 32 bytes instead of the whole file.
 */
export async function indexUnchanged(dir: OpfsDirectoryHandle, mark: IndexMark): Promise<boolean> {
  try {
    const file = await (await dir.getFileHandle(INDEX_FILE)).getFile();
    if (file.size !== mark.size) return false;
    return idsEqual(new Uint8Array(await file.slice(file.size - HASH_LENGTH).arrayBuffer()), mark.hash);
  } catch (error) {
    if (isNamed(error, "NotFoundError")) return false;
    throw error;
  }
}

/**
 * Reads and checks the index file; a missing or damaged one reads as an empty index, and `problem` says
 * why: `"missing"`, or what failed the check.
 */
export async function readIndex(
  dir: OpfsDirectoryHandle,
): Promise<{ index: Index; mark: IndexMark | undefined; problem: string | undefined }> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await (await (await dir.getFileHandle(INDEX_FILE)).getFile()).arrayBuffer());
  } catch (error) {
    if (isNamed(error, "NotFoundError")) return { index: new Index(), mark: undefined, problem: "missing" };
    throw error;
  }
  const decoded = await decodeIndex(bytes);
  if (typeof decoded === "string") return { index: new Index(), mark: undefined, problem: decoded };
  const mark = { size: bytes.length, hash: bytes.slice(bytes.length - HASH_LENGTH) };
  return { index: decoded, mark, problem: undefined };
}

/** The index `bytes` hold, or what is wrong with them. */
async function decodeIndex(bytes: Uint8Array): Promise<Index | string> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < INDEX_HEADER + HASH_LENGTH) return `${bytes.length} bytes, shorter than any index`;
  if (INDEX_MAGIC.some((b, i) => bytes[i] !== b)) return "it does not start with TSCI";
  if (bytes[4] !== 1) return `unknown version ${bytes[4]}`;
  const count = view.getUint32(8, true);
  const body = INDEX_HEADER + count * INDEX_ENTRY;
  if (bytes.length !== body + HASH_LENGTH) return `${bytes.length} bytes for ${count} entries`;
  if (!idsEqual(await sha256(bytes.subarray(0, body)), bytes.subarray(body))) {
    return "its SHA-256 does not match";
  }
  const next = view.getFloat64(12, true);
  const names = hexNames(bytes, count);
  const read: [string, Entry][] = [];
  let sorted = true;
  for (let i = 0, at = INDEX_HEADER; i < count; i++, at += INDEX_ENTRY) {
    const name = names(i);
    const size = view.getUint32(at + ID_LENGTH, true);
    const stamp = view.getFloat64(at + ID_LENGTH + 4, true);
    if (!chunkFileSizeOk(size)) return `chunk ${name} is listed with ${size} bytes`;
    if (!(stamp < next)) return `chunk ${name} is listed as used after the last use`;
    if (i > 0 && stamp < read[i - 1]![1].stamp) sorted = false;
    read.push([name, { size, stamp, id: bytes.subarray(at, at + ID_LENGTH) }]);
  }
  // Older versions of the cache wrote entries in no particular order.
  if (!sorted) read.sort(([a, x], [b, y]) => x.stamp - y.stamp || (a < b ? -1 : 1));
  const index = Index.from(read, next);
  return index.size === count ? index : "a chunk is listed twice";
}

/** Writes `index` whole (the browser swaps the new file in when it is closed); answers its mark. */
export async function writeIndex(dir: OpfsDirectoryHandle, index: Index): Promise<IndexMark> {
  const body = INDEX_HEADER + index.size * INDEX_ENTRY;
  const bytes = new Uint8Array(body + HASH_LENGTH);
  const view = new DataView(bytes.buffer);
  bytes.set(INDEX_MAGIC, 0);
  bytes[4] = 1;
  view.setUint32(8, index.size, true);
  view.setFloat64(12, index.next, true);
  let at = INDEX_HEADER;
  for (const [, { size, stamp, id }] of index.entries()) {
    bytes.set(id, at);
    view.setUint32(at + ID_LENGTH, size, true);
    view.setFloat64(at + ID_LENGTH + 4, stamp, true);
    at += INDEX_ENTRY;
  }
  const hash = await sha256(bytes.subarray(0, body));
  bytes.set(hash, body);
  await writeFile(dir, INDEX_FILE, bytes);
  return { size: bytes.length, hash };
}

/** The bytes of an id named by 64 lower-case hex digits (checked where names come from). */
function idBytes(hex: string): Uint8Array {
  const id = new Uint8Array(ID_LENGTH);
  const digit = (c: number) => (c <= 57 ? c - 48 : c - 87);
  for (let i = 0; i < ID_LENGTH; i++) {
    id[i] = (digit(hex.charCodeAt(2 * i)) << 4) | digit(hex.charCodeAt(2 * i + 1));
  }
  return id;
}

const HEX_DIGITS = new TextEncoder().encode("0123456789abcdef");

/**
 * The names of the `count` entries of index `bytes`, as hex: all written as ASCII into one buffer and
 * decoded at once (a string per byte, then joined, takes several times as long at 65,536 entries).
 */
function hexNames(bytes: Uint8Array, count: number): (i: number) => string {
  const ascii = new Uint8Array(count * 2 * ID_LENGTH);
  for (let i = 0, at = INDEX_HEADER, to = 0; i < count; i++, at += INDEX_ENTRY) {
    for (let j = 0; j < ID_LENGTH; j++) {
      const b = bytes[at + j]!;
      ascii[to++] = HEX_DIGITS[b >> 4]!;
      ascii[to++] = HEX_DIGITS[b & 15]!;
    }
  }
  const all = new TextDecoder().decode(ascii);
  return (i) => all.slice(i * 2 * ID_LENGTH, (i + 1) * 2 * ID_LENGTH);
}

/**
 * Makes `index` match the directory: forgets entries whose file is gone, deletes empty chunk files (a
 * write that never finished: none runs while the lock is held) and files no chunk object has the size of
 * (the bounds the index reader applies: answers how many), and adopts the other files it lacks as older
 * than every entry, ordered by their modification times.
 */
export async function scan(dir: OpfsDirectoryHandle, index: Index): Promise<number> {
  const names = new Set<string>();
  for await (const name of dir.keys()) if (ID_FILE.test(name)) names.add(name);
  for (const [name] of [...index.entries()]) if (!names.has(name)) index.delete(name);
  const adopted: { name: string; size: number; time: number }[] = [];
  let damaged = 0;
  for (const name of names) {
    if (index.get(name) !== undefined) continue;
    try {
      const file = await (await dir.getFileHandle(name)).getFile();
      if (chunkFileSizeOk(file.size)) {
        adopted.push({ name, size: file.size, time: file.lastModified });
        continue;
      }
      await dir.removeEntry(name);
      if (file.size > 0) damaged++;
    } catch {
      // Gone meanwhile, or held by a writer that is not a cache: the next scan looks again.
    }
  }
  adopted.sort((a, b) => a.time - b.time || (a.name < b.name ? -1 : 1));
  index.prepend(adopted);
  return damaged;
}

/** The bytes of an index file listing `count` chunks. */
export function indexFileSize(count: number): number {
  return INDEX_HEADER + INDEX_ENTRY * count + HASH_LENGTH;
}

/**
 * Deletes the least recently used files (but `keep`) until `bytes` are freed or none is left; answers how
 * many it deleted. A file that cannot be deleted (held open by a writer that is not a cache) stays counted.
 */
export async function evict(
  dir: OpfsDirectoryHandle,
  index: Index,
  options: { bytes: number; keep?: ReadonlySet<string> | undefined },
): Promise<number> {
  const stuck = new Set(options.keep);
  let freed = 0;
  let evicted = 0;
  while (freed < options.bytes) {
    const names = index.oldest(options.bytes - freed, stuck);
    if (names.length === 0) break;
    const gone = await Promise.all(
      names.map((name) => dir.removeEntry(name).then(() => true, (error) => isNamed(error, "NotFoundError"))),
    );
    names.forEach((name, i) => {
      if (!gone[i]) return void stuck.add(name);
      freed += index.get(name)!;
      index.delete(name);
      evicted++;
    });
  }
  return evicted;
}

/**
 * For a damaged file a cache deleted without the lock: forgets it only if it is still missing or damaged,
 * for another tab may have written it again since (and lists it at its size if that one is good).
 */
export async function recheck(dir: OpfsDirectoryHandle, index: Index, name: string): Promise<void> {
  const object = await readChunkFile(dir, name).catch(() => undefined);
  if (object !== undefined) {
    try {
      await decodeChunk(hexToId(name), object);
      if (index.get(name) !== object.length) index.add(name, object.length);
      return;
    } catch {
      await removeFile(dir, name);
    }
  }
  index.delete(name);
}
