/**
 * A chunk cache in the browser's Origin Private File System (OPFS): the browser's counterpart of
 * `directory_cache.ts`, kept across page loads and shared by the tabs and workers of one origin. Web APIs
 * only; where there is no OPFS (Deno, Bun, Node) the cache says so and stays empty.
 *
 * @module
 */

import { sha256 } from "../bytes.ts";
import { errorMessage } from "../errors.ts";
import { CHUNK_HEADER_LENGTH, decodeChunk, encodeChunk, MAX_CHUNK_LENGTH } from "./codec.ts";
import { type ChunkId, hexToId, ID_LENGTH, idsEqual, idToHex } from "./ids.ts";
import type { ChunkCache, ChunkGetOptions } from "./source.ts";

/** The parts of a `FileSystemDirectoryHandle` the cache uses; a real one has them all. */
export interface OpfsDirectoryHandle {
  readonly name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

/** The parts of a `FileSystemFileHandle` the cache uses. */
export interface OpfsFileHandle {
  getFile(): Promise<
    { readonly size: number; readonly lastModified: number; arrayBuffer(): Promise<ArrayBuffer> }
  >;
  createWritable(): Promise<OpfsWritable>;
}

/** The parts of a `FileSystemWritableFileStream` the cache uses. */
export interface OpfsWritable {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}

/** Options of {@linkcode OpfsChunkCache}. */
export interface OpfsChunkCacheOptions {
  /** The cache's directory, one name in the origin's private file system. Tabs and workers that name the
   * same directory share the cache. @default {"tessera-chunks"} */
  directory?: string | undefined;
  /** The most bytes of chunk files kept. A file is the chunk object: the chunk's bytes and a 12-byte
   * header. Tabs sharing a directory should agree on it: each keeps its own when it writes.
   * @default {268435456 (256 MiB)} */
  capacityBytes?: number | undefined;
  /** The directory `directory` is made in, instead of the origin's root (for tests).
   * @default {navigator.storage.getDirectory()} */
  root?: OpfsDirectoryHandle | undefined;
}

/** What an {@linkcode OpfsChunkCache} did since it was made. */
export interface OpfsChunkCacheStats {
  /** Reads answered from a verified file. */
  hits: number;
  /** Reads that found no usable file (damaged ones included). */
  misses: number;
  /** Chunks kept: files written, or found already written by another tab. */
  puts: number;
  /** Files deleted to make room. */
  evictions: number;
  /** Files that failed verification; each was deleted and read as a miss. */
  damaged: number;
  /** Chunks not kept: the cache is disabled, the chunk is larger than the cache, or writing failed. */
  dropped: number;
  /** The last error that made a read miss or a write drop, as a message. */
  lastError: string | undefined;
}

const DEFAULT_DIRECTORY = "tessera-chunks";
const DEFAULT_CAPACITY_BYTES = 256 * 1024 * 1024;
const INDEX_FILE = "tessera-index";
const ID_FILE = /^[0-9a-f]{64}$/;
/** Hits are recorded in the index at most this often (and by every write before it evicts). */
const TOUCH_FLUSH_MS = 1000;
/** A write that waits longer than this for another tab's lock is dropped, so a stuck tab stalls no read. */
const LOCK_WAIT_MS = 30_000;
/** The most chunks written under one hold of the lock. */
const MAX_BATCH = 64;

interface WebLocks {
  request<T>(
    name: string,
    options: { mode: "exclusive"; signal?: AbortSignal },
    callback: () => Promise<T>,
  ): Promise<T>;
}

interface OpfsGlobals {
  navigator?: { storage?: { getDirectory?: () => Promise<OpfsDirectoryHandle> }; locks?: WebLocks };
  FileSystemFileHandle?: { prototype: { createWritable?: unknown } };
}

const web = (): OpfsGlobals => globalThis as unknown as OpfsGlobals;

interface Pending {
  name: string;
  object: Uint8Array;
  done: () => void;
  promise: Promise<void>;
}

/**
 * A chunk cache in the origin private file system that holds at most `capacityBytes` of chunk files,
 * dropping the least recently used first, and survives page reloads. Safe to share between the tabs and
 * workers of an origin, on a page's main thread or in a dedicated worker (it uses the asynchronous file
 * API only).
 *
 * **Files.** `<directory>/<id in hex>` holds the chunk object as `encodeChunk` makes it (uncoded: browsers
 * have no zstd compressor), so every read is verified against its id; a damaged file is deleted and read
 * as a miss, never served. `<directory>/tessera-index` lists each chunk's size and last use (44 bytes a
 * chunk, checked by a SHA-256); it is the byte total, so no write lists the directory. The browser writes
 * a file into a copy beside it (chromium: `<name>.crswap`) and swaps it in whole when it is closed, so a
 * reader never sees part of one; a chunk file exists, empty, while it is first written, and reads as a miss.
 *
 * **Locks.** Reads take no lock: a file that vanishes under a read (another tab evicted it) or changes
 * during it is a miss, and a damaged file is deleted at once (the index forgets it at this cache's next
 * change). Everything that changes the index (writing chunks, evicting, recording hits,
 * forgetting damaged files, and the one directory scan each cache makes before its first change, which
 * adopts files the index lacks and forgets entries whose file is gone) runs under the exclusive Web Lock
 * {@linkcode OpfsChunkCache.lockName}, one hold for every chunk put meanwhile (up to 64).
 *
 * **Recency.** The index orders uses with a counter. A write stamps its chunks as newest; a hit is noted
 * in memory and recorded by this cache's next change, or a second after the hit, whichever is first. So
 * another tab's eviction may not yet know of a hit made in the last second: least recently used is exact
 * within a tab and approximate across tabs.
 *
 * **Bound.** Under the lock, a write first deletes the least recently used files until the index total
 * plus the new chunks fits `capacityBytes`, then writes the index counting the new chunks, then writes
 * their files. So the chunk files never hold more than `capacityBytes` (the index adds 44 bytes a chunk),
 * whatever the number of tabs: a tab that dies mid-write leaves the index counting a file that is not
 * there (never the reverse), and the next scan corrects it. Two exceptions, both transient: a chunk file
 * rewritten in place (found damaged or a different size) keeps its old copy until the new one is swapped
 * in, and files the index lacks (written by something else, or after the index was deleted) count only
 * once a cache's first change scans the directory. A cache opened with a smaller capacity shrinks the
 * directory at its first change.
 *
 * **Failures.** A cache that cannot open the directory (no OPFS, a `SecurityError`, a full disk) answers
 * every read with a miss and drops every put, and {@linkcode OpfsChunkCache.disabledReason} says why. A
 * write refused for quota makes room for it once more (evicting at least its size) and tries again, then
 * drops it. `put` never rejects but for bad arguments; what it dropped is counted in `stats()`.
 *
 * @example A cache for a page, in front of a store
 * ```ts
 * import { OpfsChunkCache } from "./opfs_cache.ts";
 * import { LayeredChunkSource, StoreChunkSource } from "./source.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * const cache = new OpfsChunkCache({ capacityBytes: 64 << 20 });
 * const chunks = new LayeredChunkSource([cache, new StoreChunkSource(new MemoryStore())]);
 * console.log(OpfsChunkCache.available(), cache.disabledReason); // false and why, outside a browser
 * console.log(chunks.description);
 * ```
 */
export class OpfsChunkCache implements ChunkCache {
  /** `OPFS chunk cache "<directory>"`, for messages. */
  readonly description: string;
  /** The cache's directory in the origin private file system. */
  readonly directory: string;
  /** The most bytes of chunk files kept. */
  readonly capacityBytes: number;
  /** The name of the Web Lock every change to the cache is made under. */
  readonly lockName: string;
  readonly #root: OpfsDirectoryHandle | undefined;
  #opening: Promise<OpfsDirectoryHandle | undefined> | undefined;
  #disabledReason: string | undefined;
  #scanned = false;
  readonly #queue = new Map<string, Pending>();
  readonly #touched = new Set<string>();
  readonly #forgotten = new Set<string>();
  #work: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #stats: OpfsChunkCacheStats = {
    hits: 0,
    misses: 0,
    puts: 0,
    evictions: 0,
    damaged: 0,
    dropped: 0,
    lastError: undefined,
  };

  /**
   * True when this runtime has what the cache needs: the origin private file system with writable files,
   * and Web Locks (browsers' pages and workers; not Deno, Bun or Node).
   */
  static available(): boolean {
    return missing(false) === undefined;
  }

  constructor(options: OpfsChunkCacheOptions = {}) {
    const { directory = DEFAULT_DIRECTORY, capacityBytes = DEFAULT_CAPACITY_BYTES, root } = options;
    if (
      typeof directory !== "string" || directory === "" || /[/\\]/.test(directory) ||
      /^\.\.?$/.test(directory)
    ) {
      throw new TypeError(
        `Cannot open an OPFS chunk cache: directory ${JSON.stringify(directory)} is not one file name`,
      );
    }
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 1) {
      throw new RangeError(
        `Cannot open OPFS chunk cache "${directory}": capacityBytes ${capacityBytes} is not a positive integer`,
      );
    }
    if (root !== undefined && typeof root?.getDirectoryHandle !== "function") {
      throw new TypeError(`Cannot open OPFS chunk cache "${directory}": root is not a directory handle`);
    }
    this.directory = directory;
    this.capacityBytes = capacityBytes;
    this.#root = root;
    this.description = `OPFS chunk cache "${directory}"`;
    this.lockName = `tessera-chunk-cache:${root ? `${root.name}/` : ""}${directory}`;
    const lacking = missing(root !== undefined);
    if (lacking !== undefined) {
      this.#disabledReason = `Cannot open OPFS chunk cache "${directory}": this runtime has no ${lacking}`;
      this.#opening = Promise.resolve(undefined);
    }
  }

  /** Why the cache answers misses and keeps nothing, once it has found out; `undefined` while it works. */
  get disabledReason(): string | undefined {
    return this.#disabledReason;
  }

  /** Opens the cache's directory now (reads and writes do it when needed): false when the cache is disabled. */
  async ready(): Promise<boolean> {
    return (await this.#open()) !== undefined;
  }

  /** The counts so far, as a copy. */
  stats(): OpfsChunkCacheStats {
    return { ...this.#stats };
  }

  async get(id: ChunkId, options: ChunkGetOptions = {}): Promise<Uint8Array | undefined> {
    const { signal } = options;
    signal?.throwIfAborted();
    const name = idToHex(id);
    const dir = await this.#open();
    const object = dir && await readChunkFile(dir, name).catch((error) => void this.#note(error));
    signal?.throwIfAborted();
    if (object === undefined) {
      this.#stats.misses++;
      return undefined;
    }
    let bytes: Uint8Array;
    try {
      bytes = await decodeChunk(id, object);
    } catch {
      this.#stats.damaged++;
      this.#stats.misses++;
      // Never serve a damaged file; the next put of this chunk writes it again.
      await dir!.removeEntry(name).catch(() => {});
      this.#forgotten.add(name);
      this.#touched.delete(name);
      this.#later();
      return undefined;
    }
    this.#stats.hits++;
    this.#touched.add(name);
    this.#later();
    return bytes;
  }

  /** Keeps a chunk; resolves once it is written, or dropped (see `stats()`). */
  async put(id: ChunkId, bytes: Uint8Array): Promise<void> {
    const name = idToHex(id);
    // Copies `bytes`, so a caller changing them later changes nothing here.
    const object = encodeChunk(bytes, { codec: "none" });
    if (object.length > this.capacityBytes || (await this.#open()) === undefined) {
      this.#stats.dropped++;
      return;
    }
    let pending = this.#queue.get(name);
    if (pending === undefined) {
      let done = () => {};
      const promise = new Promise<void>((resolve) => (done = resolve));
      pending = { name, object, done, promise };
      this.#queue.set(name, pending);
    }
    void this.#pump();
    return await pending.promise;
  }

  /** Resolves once every put so far is written or dropped, and every hit so far is recorded. */
  async settled(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#work || this.#queue.size > 0 || this.#touched.size > 0 || this.#forgotten.size > 0) {
      await this.#pump();
    }
  }

  /** The chunks the cache's index counts now, and their bytes (zero when it is disabled). */
  async usage(): Promise<{ chunks: number; bytes: number }> {
    const dir = await this.#open();
    if (!dir) return { chunks: 0, bytes: 0 };
    return await this.#locked(async () => {
      const { index } = await readIndex(dir);
      return { chunks: index.size, bytes: index.total };
    });
  }

  #open(): Promise<OpfsDirectoryHandle | undefined> {
    this.#opening ??= (async () => {
      try {
        const root = this.#root ?? await web().navigator!.storage!.getDirectory!();
        return await root.getDirectoryHandle(this.directory, { create: true });
      } catch (error) {
        this.#disabledReason = `Cannot open OPFS chunk cache "${this.directory}": ${describeError(error)}`;
        return undefined;
      }
    })();
    return this.#opening;
  }

  #locked<T>(callback: () => Promise<T>): Promise<T> {
    const signal = AbortSignal.timeout(LOCK_WAIT_MS);
    return web().navigator!.locks!.request(this.lockName, { mode: "exclusive", signal }, callback);
  }

  #note(error: unknown): void {
    this.#stats.lastError = describeError(error);
  }

  // Records hits and forgets damaged files soon, in one change, unless a change is already under way.
  #later(): void {
    if (this.#timer !== undefined || this.#work !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#pump();
    }, TOUCH_FLUSH_MS);
  }

  // Runs changes one after another; puts made while one runs go into the next, under one hold of the lock.
  #pump(): Promise<void> {
    this.#work ??= (async () => {
      // Lets the puts of the current turn join the first batch (and keeps `#work` set until it is).
      await Promise.resolve();
      try {
        while (this.#queue.size > 0 || this.#touched.size > 0 || this.#forgotten.size > 0) {
          const batch = [...this.#queue.values()].slice(0, MAX_BATCH);
          for (const { name } of batch) this.#queue.delete(name);
          const touched = [...this.#touched];
          const forgotten = [...this.#forgotten];
          this.#touched.clear();
          this.#forgotten.clear();
          const kept = await this.#change(batch, touched, forgotten).catch((error) => {
            this.#note(error);
            return new Set<string>();
          });
          for (const pending of batch) {
            if (kept.has(pending.name)) this.#stats.puts++;
            else this.#stats.dropped++;
            pending.done();
          }
        }
      } finally {
        this.#work = undefined;
      }
    })();
    return this.#work;
  }

  async #change(batch: Pending[], touched: string[], forgotten: string[]): Promise<Set<string>> {
    const dir = await this.#open();
    if (!dir) return new Set();
    try {
      return await this.#locked(() => this.#update(dir, batch, touched, forgotten));
    } catch (error) {
      // The directory itself is gone (the site's data was cleared): make it again next time.
      if (isNamed(error, "NotFoundError")) {
        this.#opening = undefined;
        this.#scanned = false;
      }
      throw error;
    }
  }

  // Under the lock. Returns the names of the batch's chunks that are kept.
  async #update(
    dir: OpfsDirectoryHandle,
    batch: Pending[],
    touched: string[],
    forgotten: string[],
  ): Promise<Set<string>> {
    const { index, whole } = await readIndex(dir);
    if (!whole || !this.#scanned) {
      await scan(dir, index);
      this.#scanned = true;
    }
    for (const name of forgotten) index.delete(name);
    for (const name of touched) index.touch(name);
    const kept = new Set<string>();
    const writes: Pending[] = [];
    for (const pending of batch) {
      const held = index.get(pending.name);
      // Another tab wrote it meanwhile: a use, not a write.
      if (held === pending.object.length && (await fileSize(dir, pending.name)) === held) {
        index.touch(pending.name);
        kept.add(pending.name);
      } else {
        index.delete(pending.name);
        writes.push(pending);
      }
    }
    let incoming = writes.reduce((sum, w) => sum + w.object.length, 0);
    while (incoming > this.capacityBytes) incoming -= writes.shift()!.object.length;
    await this.#evict(dir, index, index.oldest(index.total + incoming - this.capacityBytes));
    for (const w of writes) index.add(w.name, w.object.length);
    // The index counts the files before they exist, so the files never hold more than it says.
    await writeIndex(dir, index);
    let failed = await writeFiles(dir, writes);
    const refused = failed.filter(([, error]) => isNamed(error, "QuotaExceededError")).map(([w]) => w);
    if (refused.length > 0) {
      const need = refused.reduce((sum, w) => sum + w.object.length, 0);
      await this.#evict(dir, index, index.oldest(need, new Set(writes.map((w) => w.name))));
      failed = [...failed.filter(([w]) => !refused.includes(w)), ...await writeFiles(dir, refused)];
    }
    for (const [w, error] of failed) {
      this.#note(error);
      index.delete(w.name);
      await dir.removeEntry(w.name).catch(() => {});
    }
    if (refused.length > 0 || failed.length > 0) await writeIndex(dir, index);
    for (const w of writes) if (!failed.some(([f]) => f === w)) kept.add(w.name);
    return kept;
  }

  async #evict(dir: OpfsDirectoryHandle, index: Index, names: string[]): Promise<void> {
    await Promise.all(names.map(async (name) => {
      index.delete(name);
      this.#stats.evictions++;
      // Missing means someone else got there first; a file held open by a writer that is not a cache
      // stays, and the next scan counts it again.
      await dir.removeEntry(name).catch(() => {});
    }));
  }
}

/** What the runtime lacks for the cache, or `undefined`; with a root given, only the Web Locks. */
function missing(rootGiven: boolean): string | undefined {
  const { navigator, FileSystemFileHandle } = web();
  if (!rootGiven) {
    if (typeof navigator?.storage?.getDirectory !== "function") {
      return "origin private file system (navigator.storage.getDirectory)";
    }
    if (typeof FileSystemFileHandle?.prototype.createWritable !== "function") {
      return "writable OPFS files (FileSystemFileHandle.createWritable)";
    }
  }
  if (typeof navigator?.locks?.request !== "function") return "Web Locks (navigator.locks)";
  return undefined;
}

async function readChunkFile(dir: OpfsDirectoryHandle, name: string): Promise<Uint8Array | undefined> {
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

async function fileSize(dir: OpfsDirectoryHandle, name: string): Promise<number | undefined> {
  try {
    return (await (await dir.getFileHandle(name)).getFile()).size;
  } catch {
    return undefined;
  }
}

/** Writes each file; answers the ones that failed, with their errors. */
async function writeFiles(dir: OpfsDirectoryHandle, writes: Pending[]): Promise<[Pending, unknown][]> {
  const results = await Promise.all(writes.map(async (w): Promise<[Pending, unknown] | undefined> => {
    try {
      await writeFile(dir, w.name, w.object);
      return undefined;
    } catch (error) {
      return [w, error];
    }
  }));
  return results.filter((r) => r !== undefined);
}

async function writeFile(dir: OpfsDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
  try {
    await writable.write(bytes);
  } catch (error) {
    await writable.abort().catch(() => {});
    throw error;
  }
  // The browser swaps the written copy in whole here.
  await writable.close();
}

/** Each chunk's size and last use, and their total; uses are ordered by a counter kept with them. */
class Index {
  readonly #entries = new Map<string, { size: number; stamp: number }>();
  next = 1;
  total = 0;

  get size(): number {
    return this.#entries.size;
  }

  get(name: string): number | undefined {
    return this.#entries.get(name)?.size;
  }

  entries(): IterableIterator<[string, { size: number; stamp: number }]> {
    return this.#entries.entries();
  }

  add(name: string, size: number, stamp = this.next++): void {
    this.delete(name);
    this.#entries.set(name, { size, stamp });
    this.total += size;
  }

  touch(name: string): void {
    const entry = this.#entries.get(name);
    if (entry) entry.stamp = this.next++;
  }

  delete(name: string): void {
    const entry = this.#entries.get(name);
    if (!entry) return;
    this.#entries.delete(name);
    this.total -= entry.size;
  }

  /** The least recently used chunks, oldest first, holding at least `bytes` (all there are, if fewer). */
  oldest(bytes: number, keep: ReadonlySet<string> = new Set()): string[] {
    if (bytes <= 0) return [];
    const names: string[] = [];
    let freed = 0;
    const byAge = [...this.#entries].filter(([name]) => !keep.has(name))
      .sort(([a, x], [b, y]) => x.stamp - y.stamp || (a < b ? -1 : 1));
    for (const [name, { size }] of byAge) {
      if (freed >= bytes) break;
      names.push(name);
      freed += size;
    }
    return names;
  }
}

// The index file: "TSCI", version 1, 3 zero bytes, the entry count (u32) and the next stamp (f64); then per
// chunk its id (32 bytes), file size (u32) and last use (f64); then the SHA-256 of all that. Little-endian.
const INDEX_MAGIC = [0x54, 0x53, 0x43, 0x49];
const INDEX_HEADER = 20;
const INDEX_ENTRY = ID_LENGTH + 12;

async function readIndex(dir: OpfsDirectoryHandle): Promise<{ index: Index; whole: boolean }> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await (await (await dir.getFileHandle(INDEX_FILE)).getFile()).arrayBuffer());
  } catch (error) {
    if (isNamed(error, "NotFoundError")) return { index: new Index(), whole: false };
    throw error;
  }
  const index = await decodeIndex(bytes);
  return index ? { index, whole: true } : { index: new Index(), whole: false };
}

async function decodeIndex(bytes: Uint8Array): Promise<Index | undefined> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < INDEX_HEADER + 32 || INDEX_MAGIC.some((b, i) => bytes[i] !== b) || bytes[4] !== 1) {
    return undefined;
  }
  const count = view.getUint32(8, true);
  const body = INDEX_HEADER + count * INDEX_ENTRY;
  if (bytes.length !== body + 32 || !idsEqual(await sha256(bytes.subarray(0, body)), bytes.subarray(body))) {
    return undefined;
  }
  const index = new Index();
  index.next = view.getFloat64(12, true);
  for (let at = INDEX_HEADER; at < body; at += INDEX_ENTRY) {
    const size = view.getUint32(at + ID_LENGTH, true);
    const stamp = view.getFloat64(at + ID_LENGTH + 4, true);
    if (
      size <= CHUNK_HEADER_LENGTH || size > CHUNK_HEADER_LENGTH + MAX_CHUNK_LENGTH || !(stamp < index.next)
    ) {
      return undefined;
    }
    index.add(idToHex(bytes.subarray(at, at + ID_LENGTH)), size, stamp);
  }
  return index.size === count ? index : undefined;
}

async function writeIndex(dir: OpfsDirectoryHandle, index: Index): Promise<void> {
  const body = INDEX_HEADER + index.size * INDEX_ENTRY;
  const bytes = new Uint8Array(body + 32);
  const view = new DataView(bytes.buffer);
  bytes.set(INDEX_MAGIC, 0);
  bytes[4] = 1;
  view.setUint32(8, index.size, true);
  view.setFloat64(12, index.next, true);
  let at = INDEX_HEADER;
  for (const [name, { size, stamp }] of index.entries()) {
    bytes.set(hexToId(name), at);
    view.setUint32(at + ID_LENGTH, size, true);
    view.setFloat64(at + ID_LENGTH + 4, stamp, true);
    at += INDEX_ENTRY;
  }
  bytes.set(await sha256(bytes.subarray(0, body)), body);
  await writeFile(dir, INDEX_FILE, bytes);
}

/**
 * Makes `index` match the directory: forgets entries whose file is gone, deletes empty chunk files (a
 * write that never finished: none runs while the lock is held) and adopts the other files it lacks as
 * older than every entry, ordered by their modification times.
 */
async function scan(dir: OpfsDirectoryHandle, index: Index): Promise<void> {
  const names = new Set<string>();
  for await (const name of dir.keys()) if (ID_FILE.test(name)) names.add(name);
  for (const [name] of [...index.entries()]) if (!names.has(name)) index.delete(name);
  const adopted: { name: string; size: number; time: number }[] = [];
  for (const name of names) {
    if (index.get(name) !== undefined) continue;
    try {
      const file = await (await dir.getFileHandle(name)).getFile();
      if (file.size === 0) await dir.removeEntry(name);
      else adopted.push({ name, size: file.size, time: file.lastModified });
    } catch {
      // Gone meanwhile, or held by a writer that is not a cache: the next scan looks again.
    }
  }
  adopted.sort((a, b) => a.time - b.time || (a.name < b.name ? -1 : 1));
  let oldest = index.next;
  for (const [, { stamp }] of index.entries()) oldest = Math.min(oldest, stamp);
  adopted.forEach(({ name, size }, i) => index.add(name, size, oldest - adopted.length + i));
}

function isNamed(error: unknown, ...names: string[]): boolean {
  return names.includes((error as { name?: unknown } | null)?.name as string);
}

function describeError(error: unknown): string {
  const name = (error as { name?: unknown } | null)?.name;
  const message = errorMessage(error);
  return typeof name === "string" && name !== "Error" && !message.startsWith(name)
    ? `${name}: ${message}`
    : message;
}
