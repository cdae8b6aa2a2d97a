/**
 * A chunk cache in the browser's Origin Private File System (OPFS): the browser's counterpart of
 * `directory_cache.ts`, kept across page loads and shared by the tabs and workers of one origin. Web APIs
 * only; where there is no OPFS (Deno, Bun, Node) the cache says so and stays empty. The directory's files
 * (the index, the scan) are in `_opfs_index.ts`, the change a write makes in `_opfs_directory.ts`, the file
 * operations in `_opfs_files.ts`.
 *
 * @module
 */

import { errorMessage, TesseraError } from "../errors.ts";
import { decodeChunk, encodeChunk } from "./codec.ts";
import { type ChunkId, idToHex } from "./ids.ts";
import type { ChunkCache, ChunkGetOptions } from "./source.ts";
import { IndexedDirectory } from "./_opfs_directory.ts";
import { describeError, isNamed, type OpfsDirectoryHandle, readChunkFile } from "./_opfs_files.ts";

export type { OpfsDirectoryHandle, OpfsFile, OpfsFileHandle, OpfsWritable } from "./_opfs_files.ts";

/** Options of {@linkcode OpfsChunkCache}. */
export interface OpfsChunkCacheOptions {
  /** The cache's directory, one name in the origin's private file system. Tabs and workers that name the
   * same directory share the cache. @default {"tessera-chunks"} */
  directory?: string | undefined;
  /** The most bytes of chunk files kept. A file is the chunk object: the chunk's bytes and a 12-byte
   * header. Tabs sharing a directory should agree on it: each keeps its own when it writes.
   * @default {268435456 (256 MiB)} */
  capacityBytes?: number | undefined;
  /** The directory `directory` is made in, instead of the origin's root (for tests). The origin's root
   * itself (`navigator.storage.getDirectory()`, whose name is "") is the default.
   * @default {navigator.storage.getDirectory()} */
  root?: OpfsDirectoryHandle | undefined;
  /** How long a chunk put while another tab or worker holds the cache's lock waits to be written before
   * it is dropped (a frozen tab must not keep chunks queued forever). @default {30000} */
  lockPatienceMs?: number | undefined;
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
  /** Files that failed verification or had a size no chunk has; each was deleted. */
  damaged: number;
  /** Chunks not kept: the cache is disabled, the chunk is larger than it, too many were waiting, the lock
   * stayed held for `lockPatienceMs` (30 s), or writing failed. */
  dropped: number;
  /** Times a change waited 1 s for the lock in vain (another tab or worker held it) and was put off. */
  lockTimeouts: number;
  /** The last error that made a read miss or a write drop, or the index be rebuilt, as a message. */
  lastError: string | undefined;
}

const DEFAULT_DIRECTORY = "tessera-chunks";
const DEFAULT_CAPACITY_BYTES = 256 * 1024 * 1024;
/** Hits are recorded in the index at most this often (and by every write before it evicts). */
const TOUCH_FLUSH_MS = 1000;
/** How long one change waits for the lock before it is put off: a stuck tab must not hold up writes. */
const LOCK_WAIT_MS = 1000;
/** How long a change put off waits before it asks for the lock again. */
const LOCK_RETRY_MS = 1000;
/** A chunk still unwritten this long after `put`, for want of the lock, is dropped (by default). */
const DEFAULT_LOCK_PATIENCE_MS = 30_000;
/** How long {@linkcode OpfsChunkCache.usage} waits for the lock. */
const USAGE_LOCK_WAIT_MS = 30_000;
/** The most chunks written under one hold of the lock. */
const MAX_BATCH = 64;
/** The most bytes of chunks waiting to be written; a put beyond it is dropped. */
const MAX_QUEUE_BYTES = 16 * 1024 * 1024;
/** The most chunks waiting to be written; a put beyond it is dropped. */
const MAX_QUEUE_CHUNKS = 1024;

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
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;

interface Pending {
  name: string;
  object: Uint8Array;
  /** When it was put (`Date.now()`). */
  since: number;
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
 * chunk, checked by a SHA-256); it is the byte total, so no write lists the directory. The browser swaps a
 * written file in whole when it is closed; a chunk file exists, empty, while it is first written, and reads
 * as a miss.
 *
 * **Writes.** `put` queues the chunk and resolves at once (a put finding 1,024 chunks or 16 MiB waiting is
 * dropped); the queue is written in the background, up to 64 chunks a change, and `settled()` waits for
 * it. Reads take no lock. Every change of the index (writing, evicting, recording hits, forgetting damaged
 * files, and the directory scan each cache makes before its first change, which adopts files the index
 * lacks) runs under the exclusive Web Lock {@linkcode OpfsChunkCache.lockName}. A change waits 1 s for it;
 * while another tab or worker holds it (busy, frozen, paused in a debugger) the change is tried again every
 * second, and chunks still unwritten 30 s after their put are dropped: a stuck tab costs cache misses, never
 * a read. A cache keeps the index it last wrote in memory and reads the file again only when another cache
 * has changed it (told by its size and trailing SHA-256).
 *
 * **Recency.** A write stamps its chunks as newest; a hit is recorded by this cache's next change, or a
 * second after the hit: least recently used is exact within a tab and approximate across tabs.
 *
 * **Bound.** Under the lock, a write first deletes the least recently used files until the index total
 * plus the new chunks fits `capacityBytes`, then writes the index counting them, then their files. So the
 * chunk files never hold more than `capacityBytes`, whatever the number of tabs: a tab that dies mid-write
 * leaves the index counting a file that is not there (never the reverse). Transient exceptions: a chunk
 * file rewritten in place keeps its old copy until the new one is swapped in, and files the index lacks
 * count once a cache's first change scans the directory.
 *
 * **Failures.** A cache that cannot open the directory (no OPFS, a `SecurityError`) answers every read
 * with a miss and drops every put; {@linkcode OpfsChunkCache.disabledReason} says why. A write refused for
 * quota (the index or a chunk file) evicts the least recently used files and tries once more, then drops
 * the chunk. `put` never rejects but for bad arguments; `stats()` counts what it dropped, and its
 * `lastError` says why.
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
  /**
   * The name of the Web Lock every change to the cache is made under: `tessera-chunk-cache:<directory>`
   * in the origin's root (given or not), `tessera-chunk-cache:<root's name>/<directory>` in another root.
   */
  readonly lockName: string;
  readonly #root: OpfsDirectoryHandle | undefined;
  readonly #lockPatienceMs: number;
  #opening: Promise<IndexedDirectory | undefined> | undefined;
  #disabledReason: string | undefined;
  readonly #queue = new Map<string, Pending>();
  /** The chunks queued or being written, and their bytes. */
  readonly #waiting = { chunks: 0, bytes: 0 };
  readonly #touched = new Set<string>();
  readonly #forgotten = new Set<string>();
  /** When the lock was first found busy, while it still is. */
  #busySince: number | undefined;
  #work: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #stats: OpfsChunkCacheStats = {
    hits: 0,
    misses: 0,
    puts: 0,
    evictions: 0,
    damaged: 0,
    dropped: 0,
    lockTimeouts: 0,
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
    checkOpfsCacheOptions(options);
    const {
      directory = DEFAULT_DIRECTORY,
      capacityBytes = DEFAULT_CAPACITY_BYTES,
      root,
      lockPatienceMs = DEFAULT_LOCK_PATIENCE_MS,
    } = options;
    this.directory = directory;
    this.capacityBytes = capacityBytes;
    this.#root = root;
    this.#lockPatienceMs = lockPatienceMs;
    this.description = `OPFS chunk cache "${directory}"`;
    // The origin's root is named "": given or not, it is one directory and must be one lock.
    this.lockName = `tessera-chunk-cache:${root && root.name !== "" ? `${root.name}/` : ""}${directory}`;
    const lacking = missing(root !== undefined);
    if (lacking !== undefined) {
      this.#disabledReason = `Cannot open ${this.description}: this runtime has no ${lacking}`;
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
    const dir = (await this.#open())?.handle;
    const object = dir && await readChunkFile(dir, name).catch((error) => {
      this.#note(
        `Cannot read chunk ${name} from ${this.description}: ${describeError(error)}; read as a miss`,
      );
      return undefined;
    });
    signal?.throwIfAborted();
    if (object === undefined) {
      this.#stats.misses++;
      return undefined;
    }
    let bytes: Uint8Array;
    try {
      bytes = await decodeChunk(id, object);
    } catch (error) {
      this.#stats.damaged++;
      this.#stats.misses++;
      this.#note(
        `Chunk ${name} in ${this.description} failed verification (${errorMessage(error)}); ` +
          "deleted it and read it as a miss",
      );
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

  /**
   * Queues a chunk to be kept and resolves at once: the cache writes it in the background (see
   * `settled()`), or drops it (see `stats()`) when it is disabled, the chunk is larger than the cache, too
   * much already waits, or the lock stays held by another tab for 30 s.
   */
  async put(id: ChunkId, bytes: Uint8Array): Promise<void> {
    const name = idToHex(id);
    // Copies `bytes`, so a caller changing them later changes nothing here.
    const object = encodeChunk(bytes, { codec: "none" });
    if (object.length > this.capacityBytes || (await this.#open()) === undefined) {
      this.#stats.dropped++;
      return;
    }
    if (this.#queue.has(name)) return;
    const waiting = this.#waiting;
    if (waiting.chunks >= MAX_QUEUE_CHUNKS || waiting.bytes + object.length > MAX_QUEUE_BYTES) {
      this.#stats.dropped++;
      this.#note(
        `Cannot write chunk ${name} to ${this.description}: ${waiting.chunks} chunks ` +
          `(${mib(waiting.bytes)}) already wait to be written (the lock "${this.lockName}" is held ` +
          `by another tab or worker, or writing is slow); the chunk was not cached`,
      );
      return;
    }
    this.#queue.set(name, { name, object, since: Date.now() });
    waiting.chunks++;
    waiting.bytes += object.length;
    void this.#pump();
  }

  /**
   * Resolves once every put so far is written or dropped, and every hit so far is recorded (or given up:
   * while another tab holds the lock this takes up to 30 s).
   */
  async settled(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#work || this.#hasWork()) await this.#pump();
  }

  /**
   * The chunks the cache's index counts now, and their bytes (zero when it is disabled). Rejects with a
   * `TesseraError` when another tab or worker holds the cache's lock for 30 s.
   */
  async usage(): Promise<{ chunks: number; bytes: number }> {
    const directory = await this.#open();
    if (!directory) return { chunks: 0, bytes: 0 };
    const got = await this.#withLock(USAGE_LOCK_WAIT_MS, () => directory.index());
    if (!got) {
      throw new TesseraError(
        "STORE_IO",
        `Cannot count the chunks of ${this.description}: waited ${USAGE_LOCK_WAIT_MS / 1000} s for its ` +
          `lock "${this.lockName}", held by another tab or worker; try again later`,
      );
    }
    return { chunks: got.value.size, bytes: got.value.total };
  }

  #open(): Promise<IndexedDirectory | undefined> {
    this.#opening ??= (async () => {
      try {
        const root = this.#root ?? await web().navigator!.storage!.getDirectory!();
        const handle = await root.getDirectoryHandle(this.directory, { create: true });
        return new IndexedDirectory(handle, {
          description: this.description,
          capacityBytes: this.capacityBytes,
          report: {
            evicted: (count) => void (this.#stats.evictions += count),
            damaged: (count) => void (this.#stats.damaged += count),
            note: (message) => this.#note(message),
          },
        });
      } catch (error) {
        this.#disabledReason = `Cannot open ${this.description}: ${describeError(error)}${openHint(error)}`;
        return undefined;
      }
    })();
    return this.#opening;
  }

  /** Runs `callback` under the lock, waiting at most `waitMs` for it: `undefined` when it did not get it. */
  async #withLock<T>(waitMs: number, callback: () => Promise<T>): Promise<{ value: T } | undefined> {
    let entered = false;
    try {
      const signal = AbortSignal.timeout(waitMs);
      const value = await web().navigator!.locks!.request(
        this.lockName,
        { mode: "exclusive", signal },
        () => {
          entered = true;
          return callback();
        },
      );
      return { value };
    } catch (error) {
      if (!entered && isNamed(error, "TimeoutError", "AbortError")) return undefined;
      throw error;
    }
  }

  #note(message: string): void {
    this.#stats.lastError = message;
  }

  #hasWork(): boolean {
    return this.#queue.size > 0 || this.#touched.size > 0 || this.#forgotten.size > 0;
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
        while (this.#hasWork()) {
          const batch = [...this.#queue.values()].slice(0, MAX_BATCH);
          for (const { name } of batch) this.#queue.delete(name);
          const touched = [...this.#touched];
          const forgotten = [...this.#forgotten];
          this.#touched.clear();
          this.#forgotten.clear();
          const kept = await this.#change(batch, touched, forgotten);
          if (kept === undefined) {
            this.#putOff(batch, touched, forgotten);
            if (this.#hasWork()) await sleep(LOCK_RETRY_MS);
            continue;
          }
          this.#busySince = undefined;
          for (const { name, object } of batch) {
            this.#waiting.chunks--;
            this.#waiting.bytes -= object.length;
            if (kept.has(name)) this.#stats.puts++;
            else this.#stats.dropped++;
          }
        }
      } finally {
        this.#work = undefined;
      }
    })();
    return this.#work;
  }

  // The lock was busy: puts the change back in front of the queue, and drops what waited too long.
  #putOff(batch: Pending[], touched: string[], forgotten: string[]): void {
    const now = Date.now();
    this.#stats.lockTimeouts++;
    this.#busySince ??= now - LOCK_WAIT_MS;
    const queued = [...batch, ...this.#queue.values()];
    this.#queue.clear();
    const stale: Pending[] = [];
    for (const pending of queued) {
      if (now - pending.since < this.#lockPatienceMs) this.#queue.set(pending.name, pending);
      else stale.push(pending);
    }
    for (const { object } of stale) {
      this.#waiting.chunks--;
      this.#waiting.bytes -= object.length;
      this.#stats.dropped++;
    }
    if (stale.length > 0) {
      const what = stale.length === 1
        ? `chunk ${stale[0]!.name}`
        : `${stale.length} chunks (${stale[0]!.name} first)`;
      this.#note(
        `Cannot write ${what} to ${this.description}: waited ${this.#lockPatienceMs / 1000} s for its lock ` +
          `"${this.lockName}", held by another tab or worker of the site (busy, frozen or paused in a ` +
          "debugger: reload or close it); " +
          `${stale.length === 1 ? "the chunk was" : "they were"} not cached`,
      );
    }
    // Hits and damaged files are only bookkeeping: given up with the chunks, so `settled()` ends.
    if (now - this.#busySince < this.#lockPatienceMs) {
      for (const name of touched) this.#touched.add(name);
      for (const name of forgotten) this.#forgotten.add(name);
    }
  }

  // One change under the lock: the names of the batch's chunks kept, or `undefined` when the lock was busy.
  async #change(batch: Pending[], touched: string[], forgotten: string[]): Promise<Set<string> | undefined> {
    const directory = await this.#open();
    if (!directory) return new Set();
    try {
      const got = await this.#withLock(LOCK_WAIT_MS, () => directory.change({ batch, touched, forgotten }));
      return got?.value;
    } catch (error) {
      // The directory itself is gone (the site's data was cleared): make it again next time.
      if (isNamed(error, "NotFoundError") || isNamed((error as { cause?: unknown }).cause, "NotFoundError")) {
        this.#opening = undefined;
      }
      const lost = batch.length === 0
        ? ""
        : `; ${batch.length === 1 ? "1 chunk was" : `${batch.length} chunks were`} not cached`;
      this.#note(
        error instanceof TesseraError
          ? `${error.message}${lost}`
          : `Cannot change ${this.description}: ${describeError(error)}${lost}`,
      );
      return new Set();
    }
  }
}

/** How {@linkcode checkOpfsCacheOptions} words its errors. */
export interface OpfsOptionsWording {
  /** What failed, starting each message. @default {"Cannot open an OPFS chunk cache"} */
  action?: string;
  /** What the caller calls the options, prefixed to each option's name ("opfs": "opfs.directory").
   * @default {none} */
  name?: string;
}

/**
 * Throws `TypeError` or `RangeError` naming the option, unless `options` are options of
 * {@linkcode OpfsChunkCache}.
 */
export function checkOpfsCacheOptions(options: unknown, wording: OpfsOptionsWording = {}): void {
  const { action = "Cannot open an OPFS chunk cache", name } = wording;
  const field = (option: string) => (name === undefined ? option : `${name}.${option}`);
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`${action}: ${name ?? "the options"} must be an object, not ${String(options)}`);
  }
  const { directory, capacityBytes, root, lockPatienceMs } = options as OpfsChunkCacheOptions;
  if (
    directory !== undefined &&
    (typeof directory !== "string" || directory === "" || /[/\\]/.test(directory) ||
      /^\.\.?$/.test(directory))
  ) {
    throw new TypeError(`${action}: ${field("directory")} ${JSON.stringify(directory)} is not one file name`);
  }
  if (capacityBytes !== undefined && (!Number.isSafeInteger(capacityBytes) || capacityBytes < 1)) {
    throw new RangeError(`${action}: ${field("capacityBytes")} ${capacityBytes} is not a positive integer`);
  }
  if (lockPatienceMs !== undefined && (!Number.isSafeInteger(lockPatienceMs) || lockPatienceMs < 1)) {
    throw new RangeError(
      `${action}: ${field("lockPatienceMs")} ${lockPatienceMs} is not a positive integer (milliseconds)`,
    );
  }
  if (root !== undefined && typeof root?.getDirectoryHandle !== "function") {
    throw new TypeError(`${action}: ${field("root")} is not a directory handle`);
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
  if (typeof AbortSignal?.timeout !== "function") return "AbortSignal.timeout";
  return undefined;
}

/** What to do about a directory the cache could not open. */
function openHint(error: unknown): string {
  if (isNamed(error, "SecurityError")) {
    return " (storage is not allowed here: a sandboxed or opaque-origin frame, or site data blocked in the " +
      "browser's settings); chunks are read from the store every time";
  }
  if (isNamed(error, "QuotaExceededError")) {
    return " (the origin's storage is full: free other site data); chunks are read from the store every time";
  }
  return "; chunks are read from the store every time";
}
