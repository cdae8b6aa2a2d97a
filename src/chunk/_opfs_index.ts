/**
 * The parts of `OpfsChunkCache` that know its directory: the file handles it uses, the index file (each
 * chunk's size and last use), the scan that rebuilds the index from the files, and reading, writing,
 * evicting and deleting chunk files. Private to `opfs_cache.ts`; the callers hold the cache's lock for
 * everything but reads.
 *
 * @module
 */

import { sha256 } from "../bytes.ts";
import { errorMessage, TesseraError } from "../errors.ts";
import { CHUNK_HEADER_LENGTH, decodeChunk, MAX_CHUNK_LENGTH } from "./codec.ts";
import { hexToId, ID_LENGTH, idsEqual } from "./ids.ts";

/** The parts of a `FileSystemDirectoryHandle` the cache uses; a real one has them all. */
export interface OpfsDirectoryHandle {
  readonly name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

/** The parts of a `File` the cache uses. */
export interface OpfsFile {
  readonly size: number;
  readonly lastModified: number;
  arrayBuffer(): Promise<ArrayBuffer>;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/** The parts of a `FileSystemFileHandle` the cache uses. */
export interface OpfsFileHandle {
  getFile(): Promise<OpfsFile>;
  createWritable(): Promise<OpfsWritable>;
}

/** The parts of a `FileSystemWritableFileStream` the cache uses. */
export interface OpfsWritable {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}

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

/** How an {@linkcode IndexedDirectory} reports files it evicted or found damaged, and failures. */
export interface DirectoryReport {
  evicted(count: number): void;
  damaged(count: number): void;
  note(message: string): void;
}

/** A chunk to write: the file's name (the id in hex) and its bytes. */
export interface ChunkWrite {
  name: string;
  object: Uint8Array;
}

/** One change: chunks to keep, chunks read since the last change (in order), damaged files deleted. */
export interface Change<T extends ChunkWrite> {
  batch: readonly T[];
  touched: readonly string[];
  forgotten: readonly string[];
}

const QUOTA_HINT = ": the origin's storage is full even after evicting the least recently used chunks " +
  "(free other site data, or lower capacityBytes)";

/**
 * A cache's directory as one cache sees it: the index it last wrote, kept in memory while no other cache
 * changes the file, whether it has scanned the directory, and the files failed writes left. Its methods
 * run under the cache's lock.
 */
export class IndexedDirectory {
  /** The directory's handle, for reads (which take no lock). */
  readonly handle: OpfsDirectoryHandle;
  readonly #description: string;
  readonly #capacityBytes: number;
  readonly #report: DirectoryReport;
  #scanned = false;
  /** The index as this cache last wrote or read it, and the file's mark then; unset during a change. */
  #index: Index | undefined;
  #mark: IndexMark | undefined;
  /** Chunk files a failed write left, still to delete. */
  readonly #leftovers = new Set<string>();

  constructor(
    handle: OpfsDirectoryHandle,
    options: { description: string; capacityBytes: number; report: DirectoryReport },
  ) {
    this.handle = handle;
    this.#description = options.description;
    this.#capacityBytes = options.capacityBytes;
    this.#report = options.report;
  }

  /** The index as the file has it now (not scanned). */
  async index(): Promise<Index> {
    if (this.#index && this.#mark && await indexUnchanged(this.handle, this.#mark)) return this.#index;
    return (await readIndex(this.handle)).index;
  }

  /**
   * Applies a change: records the uses, forgets damaged files still missing or damaged, makes room and
   * writes the batch; answers the names of the batch's chunks kept. Throws a `TesseraError` when the index
   * cannot be written (nothing of the batch is kept then).
   */
  async change<T extends ChunkWrite>(change: Change<T>): Promise<Set<string>> {
    const dir = this.handle;
    const { index, rewrite } = await this.#load();
    const before = index.changes;
    for (const name of [...this.#leftovers]) {
      // Listed again: another cache has written the chunk since.
      if (index.get(name) !== undefined || await removeFile(dir, name)) this.#leftovers.delete(name);
    }
    for (const name of change.forgotten) await recheck(dir, index, name);
    for (const name of change.touched) index.touch(name);
    const kept = new Set<string>();
    const writes: T[] = [];
    for (const w of change.batch) {
      const held = index.get(w.name);
      // Another tab wrote it meanwhile: a use, not a write.
      if (held === w.object.length && (await fileSize(dir, w.name)) === held) {
        index.touch(w.name);
        kept.add(w.name);
      } else {
        index.delete(w.name);
        writes.push(w);
      }
    }
    let incoming = sizeOf(writes);
    while (incoming > this.#capacityBytes) incoming -= writes.shift()!.object.length;
    await this.#evict(index, index.total + incoming - this.#capacityBytes);
    for (const w of writes) index.add(w.name, w.object.length);
    const writing = new Set(writes.map((w) => w.name));
    // The index counts the files before they exist, so the files never hold more than it says.
    let mark = this.#mark;
    if (rewrite || index.changes !== before) mark = await this.#writeIndex(index, incoming, writing);
    const written = index.changes;
    let failed = await writeFiles(dir, writes);
    const refused = failed.filter(([, error]) => isNamed(error, "QuotaExceededError")).map(([w]) => w);
    if (refused.length > 0) {
      await this.#evict(index, sizeOf(refused), writing);
      failed = [...failed.filter(([w]) => !refused.includes(w)), ...await writeFiles(dir, refused)];
    }
    for (const [w, error] of failed) {
      const full = isNamed(error, "QuotaExceededError") ? QUOTA_HINT : "";
      this.#report.note(
        `Cannot write chunk ${w.name} to ${this.#description}: ${describeError(error)}${full}; ` +
          "the chunk was not cached",
      );
      index.delete(w.name);
      // Left, the empty file would be counted by no index; a later change tries again.
      if (!await removeFile(dir, w.name)) this.#leftovers.add(w.name);
    }
    for (const w of writes) if (!failed.some(([f]) => f === w)) kept.add(w.name);
    if (index.changes !== written) {
      try {
        mark = await this.#writeIndex(index, 0, new Set());
      } catch (error) {
        // The index on disk still counts the files that failed: more than there are, which is safe.
        this.#report.note((error as Error).message);
        return kept;
      }
    }
    this.#index = index;
    this.#mark = mark;
    return kept;
  }

  // The index to change: the one this cache wrote last when no other has changed the file since, else the
  // file's (with the directory scanned when it is damaged, or this cache has not scanned it yet).
  async #load(): Promise<{ index: Index; rewrite: boolean }> {
    const cached = this.#index;
    // Until this change is written whole, the copy in memory may differ from the file.
    this.#index = undefined;
    if (cached && this.#mark && await indexUnchanged(this.handle, this.#mark)) {
      return { index: cached, rewrite: false };
    }
    const { index, mark, problem } = await readIndex(this.handle);
    this.#mark = mark;
    if (problem !== undefined && problem !== "missing") {
      this.#report.note(
        `The index of ${this.#description} (${INDEX_FILE}) failed its check: ${problem}; ` +
          "rebuilt it from the directory",
      );
    }
    if (problem === undefined && this.#scanned) return { index, rewrite: false };
    this.#report.damaged(await scan(this.handle, index));
    this.#scanned = true;
    return { index, rewrite: true };
  }

  // Writes the index; when the quota refuses it, evicts room for its copy and `incoming` more, once.
  async #writeIndex(index: Index, incoming: number, keep: ReadonlySet<string>): Promise<IndexMark> {
    try {
      return await writeIndex(this.handle, index);
    } catch (error) {
      if (!isNamed(error, "QuotaExceededError")) throw this.#indexError(error);
    }
    await this.#evict(index, INDEX_HEADER + HASH_LENGTH + INDEX_ENTRY * index.size + incoming, keep);
    try {
      return await writeIndex(this.handle, index);
    } catch (error) {
      throw this.#indexError(error);
    }
  }

  #indexError(error: unknown): TesseraError {
    const full = isNamed(error, "QuotaExceededError") ? QUOTA_HINT : "";
    return new TesseraError(
      "STORE_IO",
      `Cannot write the index of ${this.#description} (${INDEX_FILE}): ${describeError(error)}${full}`,
      { cause: error },
    );
  }

  async #evict(index: Index, bytes: number, keep?: ReadonlySet<string>): Promise<void> {
    this.#report.evicted(await evict(this.handle, index, { bytes, keep }));
  }
}

const sizeOf = (writes: readonly ChunkWrite[]) => writes.reduce((sum, w) => sum + w.object.length, 0);

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

/** A chunk file's bytes; `undefined` when it is missing, empty (being written) or replaced while read. */
export async function readChunkFile(dir: OpfsDirectoryHandle, name: string): Promise<Uint8Array | undefined> {
  try {
    const file = await (await dir.getFileHandle(name)).getFile();
    // Empty while it is first written: the browser fills it when the writer closes.
    if (file.size === 0) return undefined;
    return new Uint8Array(await file.arrayBuffer());
  } catch (error) {
    // Evicted by another tab, or replaced while read.
    if (isNamed(error, "NotFoundError", "NotReadableError")) return undefined;
    throw error;
  }
}

/** A file's size; `undefined` when it cannot be read. */
export async function fileSize(dir: OpfsDirectoryHandle, name: string): Promise<number | undefined> {
  try {
    return (await (await dir.getFileHandle(name)).getFile()).size;
  } catch {
    return undefined;
  }
}

/** Writes each file at once; answers the ones that failed, with their errors. */
export async function writeFiles<T extends { name: string; object: Uint8Array }>(
  dir: OpfsDirectoryHandle,
  writes: readonly T[],
): Promise<[T, unknown][]> {
  const results = await Promise.all(writes.map(async (w): Promise<[T, unknown] | undefined> => {
    try {
      await writeFile(dir, w.name, w.object);
      return undefined;
    } catch (error) {
      return [w, error];
    }
  }));
  return results.filter((r) => r !== undefined);
}

/** Writes a whole file: the browser writes a copy beside it and swaps it in when it is closed. */
export async function writeFile(dir: OpfsDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
  try {
    await writable.write(bytes);
  } catch (error) {
    await writable.abort().catch(() => {});
    throw error;
  }
  await writable.close();
}

/** How many times {@linkcode removeFile} tries a file still held, waiting twice as long each time. */
const REMOVE_TRIES = 8;

/**
 * Deletes a file; true once it is gone. A file whose writer was just aborted stays locked until the
 * browser has processed the abort, which `abort()` does not wait for (chromium answers
 * `NoModificationAllowedError` meanwhile): it is tried again, 10 ms later, then 20 ms, ... (1.3 s in all).
 */
export async function removeFile(dir: OpfsDirectoryHandle, name: string): Promise<boolean> {
  for (let tried = 1;; tried++) {
    try {
      await dir.removeEntry(name);
      return true;
    } catch (error) {
      if (isNamed(error, "NotFoundError")) return true;
      if (
        !isNamed(error, "NoModificationAllowedError", "InvalidModificationError") || tried >= REMOVE_TRIES
      ) {
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** (tried - 1)));
    }
  }
}

/** True when `error` is a `DOMException` (or anything) with one of `names`. */
export function isNamed(error: unknown, ...names: string[]): boolean {
  return names.includes((error as { name?: unknown } | null)?.name as string);
}

/** `error` as a message that names its kind (`QuotaExceededError: ...`). */
export function describeError(error: unknown): string {
  const name = (error as { name?: unknown } | null)?.name;
  const message = errorMessage(error);
  return typeof name === "string" && name !== "Error" && !message.startsWith(name)
    ? `${name}: ${message}`
    : message;
}
