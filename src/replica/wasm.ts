/**
 * The `wasm` replica engine: @sqlite.org/sqlite-wasm reading pages straight from snapshot images held in
 * memory. It touches no filesystem, so it runs in Deno, Bun, Node, edge functions and browsers alike.
 *
 * Lazy images (`load: "lazy"`) hold only the chunks queries have needed. SQLite's VFS is synchronous, and
 * a replica must never block the event loop, so a statement that reads a chunk memory lacks is abandoned
 * (the VFS fails the read), the chunks it missed are fetched while other statements run, and it is run again
 * from the start, on the same snapshot. Chunks a statement read are pinned until it finishes, so each run gets
 * further than the last. `docs/REPLICAS.md` ("Lazy replicas") gives the reasoning.
 *
 * @module
 */

import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import { type InStatement, type IntMode, LibsqlError, type ResultSet } from "@libsql/core/api";
import type { ChunkSource } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import type { Manifest } from "../manifest/types.ts";
import {
  type EngineConnection,
  type EngineMemory,
  type EngineSnapshot,
  replaceServed,
  type ReplicaEngine,
  type ResultLimits,
} from "./engine.ts";
import {
  ChunkMemory,
  imageName,
  loadChunks,
  prepareImage,
  releaseImage,
  type SnapshotImage,
} from "./image.ts";
import type { StatementDescription } from "./describe.ts";
import { type OffloadedOp, Offloader, OffloadUnavailable } from "./offload.ts";
import { SliceExpired, WasmConnection } from "./sql.ts";
import { toSqlArgs } from "./_values.ts";
import { type ReplicaVfs, replicaVfs, type Sqlite3, type VfsHost } from "./vfs.ts";

let shared: Promise<Sqlite3> | undefined;

/**
 * sqlite-wasm's VFSes Tessera never uses. Left on, each start of the OPFS ones in a worker of an isolated
 * page fetches `sqlite3-opfs-async-proxy.js` (which the bundle does not ship) and logs the failure, and
 * kvvfs reads `localStorage` as it starts, which throws in a sandboxed iframe and so failed every open there.
 */
const UNUSED_VFSES = ["opfs", "opfs-vfs", "opfs-wl", "opfs-sahpool", "kvvfs"];

interface Sqlite3ApiConfig {
  disable?: { vfs?: Record<string, unknown> };
  [name: string]: unknown;
}

/**
 * Sets `globalThis.sqlite3ApiConfig`, which sqlite-wasm reads as it starts (and then deletes), to turn off
 * the OPFS VFSes; a config the caller set is kept, and a VFS it names under `disable.vfs` is left as it says.
 */
function disableUnusedVfses(): void {
  const scope = globalThis as { sqlite3ApiConfig?: Sqlite3ApiConfig };
  const given = scope.sqlite3ApiConfig ?? {};
  const vfs: Record<string, unknown> = Object.fromEntries(UNUSED_VFSES.map((name) => [name, true]));
  scope.sqlite3ApiConfig = {
    ...given,
    disable: { ...given.disable, vfs: { ...vfs, ...given.disable?.vfs } },
  };
}

/** Loads sqlite-wasm once per process (or realm) and returns the module. */
export function loadSqlite3(): Promise<Sqlite3> {
  if (shared === undefined) disableUnusedVfses();
  shared ??= sqlite3InitModule().catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

/** When a snapshot's chunks are fetched: all before it is served, as queries need them, or by its size. */
export type LoadMode = "eager" | "lazy" | "auto";

/** With `load: "auto"`, images up to this size are loaded eagerly (a few ranged GETs), larger ones lazily. */
export const AUTO_EAGER_BYTES = 16 * 1024 * 1024;
/** The default memory cap of a wasm replica that may load lazily. */
export const DEFAULT_MEMORY_CACHE_BYTES = 64 * 1024 * 1024;
/** Chunks a statement that walks consecutive chunks fetches at most at once (2 MiB of 64 KiB chunks). */
const READ_AHEAD_CHUNKS = 32;
/** Runs of one statement on this thread before it moves to the worker. */
const MAX_RUNS = 8;
/** Changed chunks a refresh fetches ahead at most (those the replica held at the same place before). */
const PREFETCH_CHANGED_CHUNKS = 64;
/** Root chunks the first snapshot of a lazy replica fetches at most as it opens. */
const PREFETCH_ROOT_CHUNKS = 64;
/** Chunks a background hydration fetches per request. */
const HYDRATE_BATCH = 32;

/** Options of {@linkcode WasmEngine.create}. */
export interface WasmEngineOptions {
  /** Where chunks come from; every source verifies what it hands out. */
  chunks: ChunkSource;
  /** A sqlite-wasm module already loaded (browsers that load it their own way). */
  sqlite3?: Sqlite3 | undefined;
  /** Chunk fetches running at once while a snapshot is prepared. @default {8} */
  concurrency?: number | undefined;
  /** When chunks are fetched. @default {"auto"} */
  load?: LoadMode | undefined;
  /** Bytes of chunks kept in memory beyond what eager snapshots and running statements pin.
   * @default {64 MiB; 0 with load "eager"} */
  memoryCacheBytes?: number | undefined;
  /** Fetch a lazy snapshot's other chunks in the background, while they fit under the cap. @default {false} */
  hydrate?: boolean | undefined;
  /** Run statements larger than the cap, or that keep missing, in a worker (where the runtime has one).
   * @default {true} */
  offload?: boolean | undefined;
  /** Longest a statement may run, in ms; SQLite interrupts it then (`SQLITE_INTERRUPT`). 0: no limit.
   * With a worker, a statement still running after {@linkcode SLICE_MS} moves there, so this thread
   * serves others meanwhile. @default {0} */
  queryTimeoutMs?: number | undefined;
}

/** How long a statement under a time limit runs on the engine's thread before it moves to the worker. */
export const SLICE_MS = 50;

class WasmSnapshot implements EngineSnapshot {
  readonly image: SnapshotImage;
  readonly #engine: WasmEngine;
  #refs = 1;

  constructor(image: SnapshotImage, engine: WasmEngine) {
    this.image = image;
    this.#engine = engine;
  }

  get manifest(): Manifest {
    return this.image.manifest;
  }
  get preparedMs(): number {
    return this.image.preparedMs;
  }
  get chunksFetched(): number {
    return this.image.chunksFetched;
  }

  retain(): void {
    this.#refs++;
  }

  release(): void {
    if (--this.#refs === 0) this.#engine.forget(this);
  }
}

/** The chunks one statement read while it is run again: pinned, so a later run finds them. */
class WorkingSet {
  readonly #memory: ChunkMemory;
  /** Pinned keys and their sizes. */
  readonly #keys = new Map<string, number>();
  /** Bytes pinned. */
  bytes = 0;

  constructor(memory: ChunkMemory) {
    this.#memory = memory;
  }

  /** Pins a chunk memory holds. */
  hold(key: string): void {
    if (this.#keys.has(key)) return;
    const bytes = this.#memory.pin(key);
    if (bytes !== undefined) this.#track(key, bytes.length);
  }

  /** Pins a chunk just fetched. */
  add(key: string, bytes: Uint8Array): void {
    if (this.#keys.has(key)) return;
    this.#track(key, this.#memory.pin(key, bytes).length);
  }

  /** Unpins one chunk. */
  drop(key: string): void {
    const length = this.#keys.get(key);
    if (length === undefined) return;
    this.#keys.delete(key);
    this.#memory.unpin(key);
    this.bytes -= length;
  }

  release(): void {
    for (const key of this.#keys.keys()) this.#memory.unpin(key);
    this.#keys.clear();
    this.bytes = 0;
  }

  #track(key: string, length: number): void {
    this.#keys.set(key, length);
    this.bytes += length;
  }
}

/** What one connection's file asks of the engine: the image to read, and chunks from memory. */
class ConnectionHost implements VfsHost {
  readonly #engine: WasmEngine;
  /** The snapshot the connection's transaction reads, kept across the runs of its statements. */
  pinned: WasmSnapshot | undefined;
  /** The image SQLite's lock holds now. */
  current: SnapshotImage | undefined;
  /** Chunks reads needed and memory lacked since the last {@linkcode ConnectionHost.takeMisses}. */
  misses: { image: SnapshotImage; index: number }[] = [];
  /** While a statement is run again: every chunk it reads is pinned. */
  work: WorkingSet | undefined;

  constructor(engine: WasmEngine) {
    this.#engine = engine;
  }

  imageForTransaction(): SnapshotImage {
    return this.pinned?.image ?? this.#engine.servedImage();
  }

  adopt(image: SnapshotImage): void {
    this.#engine.snapshotOf(image)?.retain();
    this.current = image;
  }

  drop(image: SnapshotImage): void {
    if (this.current === image) this.current = undefined;
    this.#engine.snapshotOf(image)?.release();
  }

  chunk(image: SnapshotImage, index: number): Uint8Array | null | undefined {
    const key = image.keys[index - 1];
    if (key === undefined) return undefined;
    if (key === "") return null;
    const bytes = this.#engine.chunkMemory.get(key);
    if (bytes !== undefined) {
      this.work?.hold(key);
      this.#engine.reads.hits++;
    } else {
      this.#engine.reads.misses++;
    }
    return bytes;
  }

  missed(image: SnapshotImage, index: number): void {
    this.misses.push({ image, index });
  }
}

/** A connection of the engine: its SQLite connection, and the file host it reads through. */
interface Pooled {
  connection: WasmConnection;
  host: ConnectionHost;
  unregister: () => void;
  epoch: number;
  /** Set while a statement waits for chunks: the connection's next operation waits for it. */
  busy: Promise<void> | undefined;
}

/** A pooled connection lent out until `release` (one small object per call: `execute` runs per query). */
class Borrowed implements EngineConnection {
  readonly #engine: WasmEngine;
  readonly #pooled: Pooled;
  #giveBack: ((pooled: Pooled) => void) | undefined;

  constructor(engine: WasmEngine, pooled: Pooled, giveBack: (pooled: Pooled) => void) {
    this.#engine = engine;
    this.#pooled = pooled;
    this.#giveBack = giveBack;
  }

  async execute(stmt: InStatement, intMode: IntMode): Promise<ResultSet> {
    const { connection } = this.#pooled;
    const limit = connection.timeLimitMs;
    // The limit counts from now, through runs again after fetching chunks and the wait for the worker.
    const startedMs = limit > 0 ? Date.now() : 0;
    return await this.#run(
      () => {
        // Under a time limit a long statement moves to the worker, so this thread answers others meanwhile.
        connection.sliceMs = limit > 0 && this.#engine.canOffload() ? SLICE_MS : 0;
        connection.startedMs = startedMs;
        try {
          return connection.execute(stmt, intMode);
        } finally {
          connection.sliceMs = 0;
          connection.startedMs = 0;
        }
      },
      () => ({
        ...offloadOp(stmt, intMode),
        timeLimitMs: limit,
        startedMs,
        maxRows: connection.maxRows,
        maxBytes: connection.maxBytes,
      }),
    ) as ResultSet;
  }

  async executeMultiple(sql: string): Promise<void> {
    const { connection } = this.#pooled;
    // Scripts are never run in the worker: they may begin or end the connection's transaction.
    await this.#run(() => connection.executeMultiple(sql));
  }

  async describe(sql: string): Promise<StatementDescription> {
    const { connection } = this.#pooled;
    return await this.#run(() => connection.describe(sql)) as StatementDescription;
  }

  async begin(): Promise<void> {
    const { connection } = this.#pooled;
    await this.#run(() => {
      connection.executeMultiple("BEGIN DEFERRED");
      // Reading the header takes the shared lock now: the transaction keeps the snapshot served at its start.
      connection.execute("PRAGMA schema_version", "number");
    });
  }

  async commit(): Promise<void> {
    await this.#run(() => this.#pooled.connection.executeMultiple("COMMIT"));
  }

  async rollback(): Promise<void> {
    await this.#run(() => this.#pooled.connection.executeMultiple("ROLLBACK"));
  }

  /** The transaction as the caller sees it: open while SQLite's is ended for a statement run again. */
  get inTransaction(): boolean {
    return this.#pooled.host.pinned !== undefined || this.#pooled.connection.inTransaction;
  }

  release(): void {
    const giveBack = this.#giveBack;
    this.#giveBack = undefined;
    if (!giveBack) return;
    const pooled = this.#pooled;
    const done = () => {
      this.#unpinTransaction();
      giveBack(pooled);
    };
    // A statement still waiting for chunks keeps the connection until it settles.
    if (pooled.busy) pooled.busy.then(done);
    else done();
  }

  /**
   * Runs `fn` on the connection; when a read needed chunks memory lacked, fetches them and runs it again,
   * in the transaction state it started in (SQLite ends a transaction whose read failed; it is begun again
   * on the same snapshot). Statements here only read, so running one again changes nothing.
   */
  async #run<T>(fn: () => T, op?: () => OffloadedOp): Promise<T | ResultSet | undefined> {
    const pooled = this.#pooled;
    // Operations on one connection run one at a time, in call order, even while one waits for chunks.
    while (pooled.busy) await pooled.busy;
    const { host, connection } = pooled;
    host.misses.length = 0;
    let result: T;
    try {
      result = fn();
    } catch (error) {
      if (error instanceof SliceExpired && op) return await this.#exclusive(() => this.#elsewhere(fn, op));
      if (host.misses.length === 0) {
        this.#settle();
        throw error;
      }
      return await this.#exclusive(() => this.#again(fn, op));
    }
    if (host.misses.length > 0) return await this.#exclusive(() => this.#again(fn, op));
    // After the common case: a statement that began or ended a transaction moves the snapshot pin.
    if (connection.inTransaction !== (host.pinned !== undefined)) this.#settle();
    return result;
  }

  /** Runs `task` with the connection marked busy. */
  async #exclusive<R>(task: () => Promise<R>): Promise<R> {
    const pooled = this.#pooled;
    let done!: () => void;
    pooled.busy = new Promise((resolve) => (done = resolve));
    try {
      return await task();
    } finally {
      pooled.busy = undefined;
      done();
    }
  }

  async #again<T>(fn: () => T, op: (() => OffloadedOp) | undefined): Promise<T | ResultSet | undefined> {
    const { host } = this.#pooled;
    const engine = this.#engine;
    const work = new WorkingSet(engine.chunkMemory);
    host.work = work;
    let ahead = 1;
    let lastIndex = -2;
    let runs = 0;
    let offloader = op ? engine.offloader() : undefined;
    // Without a worker, a walk fetches ever larger batches, so a scan runs again a few times, not once per
    // batch; what it pins may then pass the cap until it finishes.
    const maxAhead = Math.max(READ_AHEAD_CHUNKS, 1 << 20);
    try {
      for (;;) {
        const misses = host.misses.splice(0);
        if (misses.length === 0) break;
        // SQLite stops at the first read that fails: one chunk per run, more when the runs walk neighbours.
        const { image, index } = misses[0]!;
        const walking = index > lastIndex && index <= lastIndex + ahead;
        ahead = walking ? Math.min(ahead * 2, offloader ? READ_AHEAD_CHUNKS : maxAhead) : 1;
        const wanted = new Set(misses.filter((m) => m.image === image).map((m) => m.index));
        for (let i = index; i < index + ahead && i <= image.ids.length; i++) wanted.add(i);
        lastIndex = [...wanted].reduce((a, b) => Math.max(a, b), index);
        // A statement that would pin more than the cap, or that keeps missing (a scan: every run would read
        // again what the last one read), runs in the worker, where reads may wait.
        // Pinned bytes of every statement count: several at once must not pass the cap between them.
        const tooBig = engine.chunkMemory.pinnedBytes + wanted.size * image.chunkSize >
          engine.chunkMemory.capacityBytes;
        if (offloader && (tooBig || ++runs > MAX_RUNS)) {
          work.release();
          await this.#restoreTransaction();
          try {
            const result = await offloader.run(this.#pooled.host.pinned?.image ?? image, op!());
            this.#settle();
            return result;
          } catch (error) {
            // A runtime that cannot start the worker (a Deno without read access to its module): this
            // statement, and the engine's later ones, run again here instead.
            if (!(error instanceof OffloadUnavailable)) throw error;
            engine.disableOffload();
            offloader = undefined;
          }
        }
        try {
          try {
            await this.#engine.load(image, [...wanted].sort((a, b) => a - b), work);
          } catch (error) {
            // The chunks read ahead are only ahead of need: the statement fails only if one it read fails.
            const missed = [...new Set(misses.filter((m) => m.image === image).map((m) => m.index))];
            if (missed.length === wanted.size) throw error;
            await this.#engine.load(image, missed.sort((a, b) => a - b), work);
          }
        } finally {
          await this.#restoreTransaction();
        }
        host.misses.length = 0;
        try {
          const result = fn();
          if (host.misses.length === 0) {
            this.#settle();
            return result;
          }
        } catch (error) {
          // Its chunks fetched, the statement ran past its slice: it goes on in the worker, as in #run.
          if (error instanceof SliceExpired && op) {
            host.work = undefined;
            work.release();
            return await this.#elsewhere(fn, op);
          }
          if (host.misses.length === 0) {
            this.#settle();
            throw error;
          }
        }
      }
      throw new Error("unreachable: a run that missed no chunk returned");
    } finally {
      host.work = undefined;
      work.release();
    }
  }

  /** Runs a statement that used up its slice in the worker, or here again with no slice if there is none. */
  async #elsewhere<T>(fn: () => T, op: () => OffloadedOp): Promise<T | ResultSet | undefined> {
    const engine = this.#engine;
    const offloader = engine.offloader();
    await this.#restoreTransaction();
    if (offloader) {
      try {
        const image = this.#pooled.host.pinned?.image ?? engine.servedImage();
        const result = await offloader.run(image, op());
        this.#settle();
        return result;
      } catch (error) {
        if (!(error instanceof OffloadUnavailable)) {
          this.#settle();
          throw error;
        }
        engine.disableOffload();
      }
    }
    const { host } = this.#pooled;
    host.misses.length = 0;
    let result: T;
    try {
      result = fn();
    } catch (error) {
      if (host.misses.length === 0) {
        this.#settle();
        throw error;
      }
      return await this.#again(fn, op);
    }
    if (host.misses.length > 0) return await this.#again(fn, op);
    this.#settle();
    return result;
  }

  /** Puts the connection back in the transaction state the statement started in. */
  async #restoreTransaction(): Promise<void> {
    const { host, connection } = this.#pooled;
    if (host.pinned === undefined) {
      if (connection.inTransaction) connection.executeMultiple("ROLLBACK");
      return;
    }
    if (connection.inTransaction) return;
    // The transaction's snapshot is pinned, so the new transaction reads it again. Chunk 0 (the header and
    // the first schema page) is always held, so this needs no fetch.
    connection.executeMultiple("BEGIN DEFERRED");
    connection.execute("PRAGMA schema_version", "number");
  }

  /** Pins the snapshot of a transaction SQLite began, or lets go of the one it ended. */
  #settle(): void {
    const { host, connection } = this.#pooled;
    const inTransaction = connection.inTransaction;
    if (inTransaction && host.pinned === undefined && host.current !== undefined) {
      host.pinned = this.#engine.snapshotOf(host.current);
      host.pinned?.retain();
    } else if (!inTransaction) {
      this.#unpinTransaction();
    }
  }

  #unpinTransaction(): void {
    const { host } = this.#pooled;
    const pinned = host.pinned;
    host.pinned = undefined;
    pinned?.release();
  }
}

const MAX_IDLE_CONNECTIONS = 4;
let nextPath = 1;

/** The wasm engine. Create it with {@linkcode WasmEngine.create}. */
export class WasmEngine implements ReplicaEngine {
  /** Chunk reads by SQLite's file: served from memory, or missing (fetched, then read again). */
  readonly reads = { hits: 0, misses: 0 };
  readonly kind = "wasm" as const;
  readonly sqlite3: Sqlite3;
  readonly vfs: ReplicaVfs;
  /** The chunks every image of this engine shares. */
  readonly chunkMemory: ChunkMemory;
  readonly #path: string;
  readonly #chunks: ChunkSource;
  readonly #concurrency: number;
  readonly #load: LoadMode;
  readonly #hydrate: boolean;
  readonly #queryTimeoutMs: number;
  #offload: boolean;
  readonly #byImage = new Map<SnapshotImage, WasmSnapshot>();
  readonly #inFlight = new Map<string, Promise<unknown>>();
  #indexChunks = new Map<string, Uint8Array>();
  #served: WasmSnapshot | undefined;
  readonly #idle: Pooled[] = [];
  readonly #open = new Set<Pooled>();
  /** Bumped whenever another snapshot is served; a connection is reused only within the epoch it opened in. */
  #epoch = 0;
  #closed = false;
  readonly #stop = new AbortController();
  #offloader: Offloader | undefined;
  #resultLimits: ResultLimits = { maxRows: 0, maxBytes: 0 };
  #aheadPins: WorkingSet | undefined;
  #hydrating: AbortController | undefined;
  #chunksLoaded = 0;
  #loads = 0;
  #nextConnection = 1;

  private constructor(sqlite3: Sqlite3, options: WasmEngineOptions) {
    this.sqlite3 = sqlite3;
    this.vfs = replicaVfs(sqlite3);
    this.#chunks = options.chunks;
    this.#concurrency = options.concurrency ?? 8;
    this.#load = options.load ?? "auto";
    if (!["eager", "lazy", "auto"].includes(this.#load)) {
      throw new RangeError(
        `Cannot open a replica: load ${JSON.stringify(options.load)} is not "eager", "lazy" or "auto"`,
      );
    }
    this.#hydrate = options.hydrate === true;
    this.#offload = options.offload !== false;
    this.#queryTimeoutMs = options.queryTimeoutMs ?? 0;
    if (!(this.#queryTimeoutMs >= 0) || !Number.isFinite(this.#queryTimeoutMs)) {
      throw new RangeError(
        `Cannot open a replica: queryTimeoutMs ${options.queryTimeoutMs} is not a number of milliseconds`,
      );
    }
    this.chunkMemory = new ChunkMemory(
      options.memoryCacheBytes ?? (this.#load === "eager" ? 0 : DEFAULT_MEMORY_CACHE_BYTES),
    );
    this.#path = `/tessera/replica-${nextPath++}`;
  }

  /** Loads sqlite-wasm (once per process) and creates an engine. */
  static async create(options: WasmEngineOptions): Promise<WasmEngine> {
    return new WasmEngine(options.sqlite3 ?? await loadSqlite3(), options);
  }

  /** True when `manifest`'s image is loaded lazily. */
  isLazy(manifest: Manifest): boolean {
    if (this.#load !== "auto") return this.#load === "lazy";
    return manifest.imageLength >
      Math.min(AUTO_EAGER_BYTES, this.chunkMemory.capacityBytes || AUTO_EAGER_BYTES);
  }

  async prepare(manifest: Manifest, signal: AbortSignal): Promise<EngineSnapshot> {
    const previous = this.#indexChunks;
    const next = new Map<string, Uint8Array>();
    const image = await prepareImage({
      manifest,
      chunks: this.#chunks,
      memory: this.chunkMemory,
      lazy: this.isLazy(manifest),
      indexCache: {
        get: (hex) => previous.get(hex) ?? next.get(hex),
        set: (hex, bytes) => next.set(hex, bytes),
      },
      concurrency: this.#concurrency,
      signal,
    });
    // Only the newest manifest's index chunks are kept: the next one shares most of them.
    this.#indexChunks = next;
    const snapshot = new WasmSnapshot(image, this);
    this.#byImage.set(image, snapshot);
    if (this.#closed) {
      snapshot.release();
      throw new Error("the replica is closed");
    }
    if (image.lazy) {
      if (this.#served) await this.#prefetchChanged(image, this.#served.image, signal);
      else await this.#prefetchRoots(snapshot, signal);
    }
    return snapshot;
  }

  serve(snapshot: EngineSnapshot): void {
    if (!(snapshot instanceof WasmSnapshot) || this.#byImage.get(snapshot.image) !== snapshot) {
      throw new TypeError("Cannot serve a snapshot another engine prepared");
    }
    if (snapshot === this.#served) return;
    this.#served = replaceServed(this.#served, snapshot);
    // SQLite reloads its parsed schema only when the schema cookie changes, and a database replaced by
    // another file can keep the cookie. Connections from before this snapshot are therefore not reused:
    // idle ones close now, borrowed ones when given back; a new connection parses the schema it reads.
    this.#epoch++;
    for (const pooled of this.#idle.splice(0)) this.#closeConnection(pooled);
    this.#hydrating?.abort();
    this.#hydrating = undefined;
    if (snapshot.image.lazy && this.#hydrate) this.#startHydrating(snapshot.image);
  }

  async connect(): Promise<EngineConnection> {
    if (this.#closed) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
    return new Borrowed(this, this.#idle.pop() ?? this.#openConnection(), (p) => this.#giveBack(p));
  }

  limitResults(limits: ResultLimits): void {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`Cannot limit results: ${name} ${value} is not a whole number from 0`);
      }
    }
    this.#resultLimits = { maxRows: limits.maxRows, maxBytes: limits.maxBytes };
    // Statements run to completion on this thread, so none is stepping while the bounds change.
    for (const pooled of this.#open) this.#applyLimits(pooled.connection);
  }

  /** Bounds on each statement's result (see {@linkcode ReplicaEngine.limitResults}). */
  get resultLimits(): ResultLimits {
    return { ...this.#resultLimits };
  }

  memory(): EngineMemory {
    const memory = this.chunkMemory;
    return {
      chunkBytes: memory.sizeBytes,
      chunks: memory.count,
      snapshots: this.#byImage.size,
      capacityBytes: memory.capacityBytes,
      pinnedBytes: memory.pinnedBytes,
      peakChunkBytes: memory.peakBytes,
      lazy: this.#served?.image.lazy ?? false,
      chunksLoaded: this.#chunksLoaded,
      loads: this.#loads,
      offloaded: this.#offloader?.statements ?? 0,
      chunkHits: this.reads.hits,
      chunkMisses: this.reads.misses,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new LibsqlError("The client is closed", "CLIENT_CLOSED"));
    this.#hydrating?.abort();
    this.#offloader?.close();
    for (const pooled of this.#open) this.#closeConnection(pooled);
    this.#open.clear();
    this.#idle.length = 0;
    const served = this.#served;
    this.#served = undefined;
    served?.release();
  }

  /** Runs no more statements in the worker (it could not be started). */
  disableOffload(): void {
    this.#offload = false;
  }

  /** The worker for statements larger than the memory cap, when this runtime can run one. */
  /** True when a statement can move to the worker. */
  canOffload(): boolean {
    return !this.#closed && this.#offload && Offloader.available();
  }

  offloader(): Offloader | undefined {
    if (this.#closed || !this.#offload || !Offloader.available()) return undefined;
    this.#offloader ??= new Offloader({
      take: async (image, indexes) => {
        const work = new WorkingSet(this.chunkMemory);
        try {
          // A chunk fetched ahead may be let go before it is pinned here: it is then fetched again.
          for (let round = 0; round < 3; round++) {
            await this.load(image, indexes, work);
            const bytes = indexes.map((index) => {
              const key = image.keys[index - 1]!;
              return key === "" ? null : this.chunkMemory.get(key);
            });
            if (!bytes.includes(undefined)) {
              // Pinned here now: no longer pinned as fetched ahead.
              for (const index of indexes) this.#aheadPins?.drop(image.keys[index - 1]!);
              return { bytes: bytes as (Uint8Array | null)[], release: () => work.release() };
            }
          }
          throw new Error("the chunks fetched for the offload worker were let go before use");
        } catch (error) {
          work.release();
          throw error;
        }
      },
      // Chunks fetched ahead stay pinned until the worker takes them or its statement ends, so the cap's
      // eviction never lets them go first.
      ahead: (image, indexes) => {
        this.#aheadPins ??= new WorkingSet(this.chunkMemory);
        this.load(image, indexes, this.#aheadPins).catch(() => {
          // Only ahead of need: the worker's own request fetches it again and reports what fails.
        });
      },
      // Half of what the cap leaves beside pinned chunks: batches fetched ahead push out older chunks, never
      // each other.
      room: () => this.chunkMemory.unpinnedRoom / 2,
      done: () => {
        this.#aheadPins?.release();
        this.#aheadPins = undefined;
      },
    });
    return this.#offloader;
  }

  /** The image new transactions start on. */
  servedImage(): SnapshotImage {
    if (!this.#served) throw new Error("the replica serves no snapshot");
    return this.#served.image;
  }

  /** The snapshot of an image this engine holds. */
  snapshotOf(image: SnapshotImage): WasmSnapshot | undefined {
    return this.#byImage.get(image);
  }

  /** Called by a snapshot when its last holder lets go. */
  forget(snapshot: WasmSnapshot): void {
    if (this.#byImage.get(snapshot.image) !== snapshot) return;
    this.#byImage.delete(snapshot.image);
    releaseImage(snapshot.image, this.chunkMemory);
  }

  /**
   * Brings chunks `indexes` (ascending) of `image` into memory: held ones are pinned to `work`, ones another
   * statement is fetching are waited for, the rest fetched with as few requests as their places allow.
   * Rejects with the chunk source's error (`CHECKSUM_MISMATCH`, `CORRUPT_CHUNK`, `NOT_FOUND`, a store's)
   * as a `LibsqlError` with the same code.
   */
  async load(image: SnapshotImage, indexes: readonly number[], work?: WorkingSet): Promise<void> {
    const fetch: number[] = [];
    const waits: Promise<unknown>[] = [];
    const waited: string[] = [];
    for (const index of indexes) {
      const key = image.keys[index - 1];
      if (!key) continue;
      if (this.chunkMemory.has(key)) {
        work?.hold(key);
        continue;
      }
      const pending = this.#inFlight.get(key);
      if (pending) {
        waits.push(pending);
        waited.push(key);
      } else if (!fetch.includes(index)) {
        fetch.push(index);
      }
    }
    if (fetch.length > 0) {
      this.#loads++;
      const loading = loadChunks(image, fetch, {
        chunks: this.#chunks,
        memory: this.chunkMemory,
        pin: work ? (key, bytes) => work.add(key, bytes) : undefined,
        doing: `read ${imageName(image.manifest)}`,
        concurrency: this.#concurrency,
        signal: this.#stop.signal,
      }).then((fetched) => {
        this.#chunksLoaded += fetched;
      });
      const keys = fetch.map((index) => image.keys[index - 1]!);
      for (const key of keys) this.#inFlight.set(key, loading);
      loading.catch(() => {}).finally(() => {
        for (const key of keys) if (this.#inFlight.get(key) === loading) this.#inFlight.delete(key);
      });
      waits.push(loading);
    }
    try {
      await Promise.all(waits);
    } catch (error) {
      throw queryError(error);
    }
    for (const key of waited) work?.hold(key);
  }

  /** Fetches the chunks of `image` that changed from `before` where memory held the old ones. */
  async #prefetchChanged(image: SnapshotImage, before: SnapshotImage, signal: AbortSignal): Promise<void> {
    const wanted: number[] = [];
    const n = Math.min(image.keys.length, before.keys.length);
    for (let i = 0; i < n && wanted.length < PREFETCH_CHANGED_CHUNKS; i++) {
      const key = image.keys[i]!;
      const old = before.keys[i]!;
      if (
        key !== "" && key !== old && old !== "" && this.chunkMemory.has(old) && !this.chunkMemory.has(key)
      ) {
        wanted.push(i + 1);
      }
    }
    if (wanted.length === 0) return;
    try {
      signal.throwIfAborted();
      await this.load(image, wanted);
    } catch {
      // Only ahead of need: a query that needs one of them fetches it and reports what fails.
    }
  }

  /**
   * Fetches, in one batch, the chunks holding the root page of every table and index (as the schema, read
   * through SQLite itself, lists them): each lookup then starts one level down the b-tree. The schema's own
   * pages are read first, fetched as any statement's are.
   */
  async #prefetchRoots(snapshot: WasmSnapshot, signal: AbortSignal): Promise<void> {
    const { image } = snapshot;
    snapshot.retain();
    let connection: Borrowed | undefined;
    try {
      connection = new Borrowed(this, this.#openConnection(snapshot), (p) => this.#closeConnection(p));
      const { rows } = await connection.execute(
        "SELECT DISTINCT rootpage FROM sqlite_schema WHERE rootpage > 1 ORDER BY rootpage",
        "number",
      );
      const per = image.chunkSize / image.manifest.pageSize;
      const wanted = [...new Set(rows.map((row) => Math.floor((Number(row[0]) - 1) / per)))]
        .filter((index) => index >= 1 && index <= image.keys.length)
        .slice(0, PREFETCH_ROOT_CHUNKS);
      signal.throwIfAborted();
      await this.load(image, wanted);
    } catch {
      // Only ahead of need: a query that needs one of them fetches it and reports what fails.
    } finally {
      if (connection) connection.release();
      else snapshot.release();
    }
  }

  #startHydrating(image: SnapshotImage): void {
    const stop = new AbortController();
    this.#hydrating = stop;
    const run = async () => {
      let next = 1;
      const total = image.keys.length;
      while (!stop.signal.aborted && !this.#closed && next <= total) {
        const batch: number[] = [];
        let bytes = 0;
        for (; next <= total && batch.length < HYDRATE_BATCH; next++) {
          const key = image.keys[next - 1]!;
          if (key !== "" && !this.chunkMemory.has(key)) {
            batch.push(next);
            bytes += image.chunkSize;
          }
        }
        if (batch.length === 0) continue;
        // Hydration never pushes out what queries use: it stops where memory is full.
        if (bytes > this.chunkMemory.room) return;
        await this.load(image, batch);
      }
    };
    run().catch(() => {
      // Best effort: a query that needs a chunk hydration could not fetch fetches it and reports the error.
    });
  }

  /** Opens a connection; with `pinned` (retained for it), one that reads that snapshot. */
  #openConnection(pinned?: WasmSnapshot): Pooled {
    const host = new ConnectionHost(this);
    host.pinned = pinned;
    const path = `${this.#path}-${this.#nextConnection++}.db`;
    const unregister = this.vfs.register(path, host);
    try {
      const connection = new WasmConnection(this.sqlite3, this.vfs.open(path), { guarded: true });
      connection.timeLimitMs = this.#queryTimeoutMs;
      // The engine's own reads of a snapshot (pinned: the root pages fetched ahead) are not a caller's result.
      if (pinned === undefined) this.#applyLimits(connection);
      const pooled: Pooled = {
        connection,
        host,
        unregister,
        epoch: this.#epoch,
        busy: undefined,
      };
      this.#open.add(pooled);
      return pooled;
    } catch (error) {
      unregister();
      throw error;
    }
  }

  #applyLimits(connection: WasmConnection): void {
    connection.maxRows = this.#resultLimits.maxRows;
    connection.maxBytes = this.#resultLimits.maxBytes;
  }

  #closeConnection(pooled: Pooled): void {
    this.#open.delete(pooled);
    pooled.connection.close();
    pooled.unregister();
  }

  #giveBack(pooled: Pooled): void {
    if (this.#closed || !this.#open.has(pooled)) return;
    if (pooled.epoch !== this.#epoch) {
      this.#closeConnection(pooled);
      return;
    }
    try {
      if (pooled.connection.inTransaction) pooled.connection.executeMultiple("ROLLBACK");
    } catch {
      // A connection that cannot roll back is closed rather than reused.
      this.#closeConnection(pooled);
      return;
    }
    if (this.#idle.length < MAX_IDLE_CONNECTIONS) {
      this.#idle.push(pooled);
    } else {
      this.#closeConnection(pooled);
    }
  }
}

/** What the worker runs for `stmt`: its SQL and converted arguments, plain values only (a named argument
 * the statement does not use may hold anything; it is dropped). */
function offloadOp(stmt: InStatement, intMode: IntMode): OffloadedOp {
  if (typeof stmt === "string") return { sql: stmt, args: [], intMode };
  const args = toSqlArgs(stmt.args, intMode);
  if (!Array.isArray(args)) {
    for (const [name, value] of Object.entries(args)) {
      if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) delete args[name];
      else if (typeof value === "function" || typeof value === "symbol") delete args[name];
    }
  }
  return { sql: stmt.sql, args, intMode };
}

/** A chunk a statement needed could not be read: the query fails with the reason's code; the replica serves on. */
function queryError(error: unknown): unknown {
  if (!(error instanceof TesseraError)) return error;
  return new LibsqlError(error.message, error.code, undefined, undefined, error);
}
