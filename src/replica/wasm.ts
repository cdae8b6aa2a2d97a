/**
 * The `wasm` replica engine: @sqlite.org/sqlite-wasm reading pages straight from snapshot images held in
 * memory. It touches no filesystem, so it runs in Deno, Bun, Node, edge functions and browsers alike.
 *
 * @module
 */

import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import { type InStatement, type IntMode, LibsqlError, type ResultSet } from "@libsql/core/api";
import type { ChunkSource } from "../chunk/source.ts";
import type { Manifest } from "../manifest/types.ts";
import {
  type EngineConnection,
  type EngineMemory,
  type EngineSnapshot,
  replaceServed,
  type ReplicaEngine,
} from "./engine.ts";
import { ChunkPool, prepareImage, releaseImage, type SnapshotImage } from "./image.ts";
import { sqliteError, WasmConnection } from "./sql.ts";
import { type ReplicaVfs, replicaVfs, type Sqlite3 } from "./vfs.ts";

let shared: Promise<Sqlite3> | undefined;

/** Loads sqlite-wasm once per process (or realm) and returns the module. */
export function loadSqlite3(): Promise<Sqlite3> {
  shared ??= sqlite3InitModule().catch((error: unknown) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

/** Options of {@linkcode WasmEngine.create}. */
export interface WasmEngineOptions {
  /** Where chunks come from; every source verifies what it hands out. */
  chunks: ChunkSource;
  /** A sqlite-wasm module already loaded (browsers that load it their own way). */
  sqlite3?: Sqlite3 | undefined;
  /** Chunk fetches running at once while a snapshot is prepared. @default {8} */
  concurrency?: number | undefined;
}

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

/** A pooled connection lent out until `release` (one small object per call: `execute` runs per query). */
class Borrowed implements EngineConnection {
  readonly #connection: WasmConnection;
  #giveBack: ((connection: WasmConnection) => void) | undefined;

  constructor(connection: WasmConnection, giveBack: (connection: WasmConnection) => void) {
    this.#connection = connection;
    this.#giveBack = giveBack;
  }

  async execute(stmt: InStatement, intMode: IntMode): Promise<ResultSet> {
    return this.#connection.execute(stmt, intMode);
  }

  async executeMultiple(sql: string): Promise<void> {
    this.#connection.executeMultiple(sql);
  }

  async begin(): Promise<void> {
    this.#connection.executeMultiple("BEGIN DEFERRED");
    // Reading the header takes the shared lock now: the transaction keeps the snapshot served at its start.
    this.#connection.execute("PRAGMA schema_version", "number");
  }

  async commit(): Promise<void> {
    this.#connection.executeMultiple("COMMIT");
  }

  async rollback(): Promise<void> {
    this.#connection.executeMultiple("ROLLBACK");
  }

  get inTransaction(): boolean {
    return this.#connection.inTransaction;
  }

  release(): void {
    const giveBack = this.#giveBack;
    this.#giveBack = undefined;
    giveBack?.(this.#connection);
  }
}

const MAX_IDLE_CONNECTIONS = 4;
let nextPath = 1;

/** The wasm engine. Create it with {@linkcode WasmEngine.create}. */
export class WasmEngine implements ReplicaEngine {
  readonly kind = "wasm" as const;
  readonly sqlite3: Sqlite3;
  readonly vfs: ReplicaVfs;
  readonly #path: string;
  readonly #unregister: () => void;
  readonly #chunks: ChunkSource;
  readonly #concurrency: number;
  readonly #pool = new ChunkPool();
  readonly #byImage = new Map<SnapshotImage, WasmSnapshot>();
  #indexChunks = new Map<string, Uint8Array>();
  #served: WasmSnapshot | undefined;
  readonly #idle: WasmConnection[] = [];
  readonly #open = new Set<WasmConnection>();
  /** Bumped whenever another snapshot is served; a connection is reused only within the epoch it opened in. */
  #epoch = 0;
  readonly #epochs = new WeakMap<WasmConnection, number>();
  #closed = false;

  private constructor(sqlite3: Sqlite3, options: WasmEngineOptions) {
    this.sqlite3 = sqlite3;
    this.vfs = replicaVfs(sqlite3);
    this.#chunks = options.chunks;
    this.#concurrency = options.concurrency ?? 8;
    this.#path = `/tessera/replica-${nextPath++}.db`;
    this.#unregister = this.vfs.register(this.#path, {
      imageForTransaction: () => {
        if (!this.#served) throw new Error("the replica serves no snapshot");
        return this.#served.image;
      },
      adopt: (image) => this.#byImage.get(image)?.retain(),
      drop: (image) => this.#byImage.get(image)?.release(),
    });
  }

  /** Loads sqlite-wasm (once per process) and creates an engine. */
  static async create(options: WasmEngineOptions): Promise<WasmEngine> {
    return new WasmEngine(options.sqlite3 ?? await loadSqlite3(), options);
  }

  async prepare(manifest: Manifest, signal: AbortSignal): Promise<EngineSnapshot> {
    const previous = this.#indexChunks;
    const next = new Map<string, Uint8Array>();
    const image = await prepareImage({
      manifest,
      chunks: this.#chunks,
      pool: this.#pool,
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
    for (const connection of this.#idle.splice(0)) {
      this.#open.delete(connection);
      connection.close();
    }
  }

  async connect(): Promise<EngineConnection> {
    if (this.#closed) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
    return new Borrowed(this.#idle.pop() ?? this.#openConnection(), (c) => this.#giveBack(c));
  }

  memory(): EngineMemory {
    return { chunkBytes: this.#pool.sizeBytes, chunks: this.#pool.count, snapshots: this.#byImage.size };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const connection of this.#open) connection.close();
    this.#open.clear();
    this.#idle.length = 0;
    const served = this.#served;
    this.#served = undefined;
    served?.release();
    this.#unregister();
  }

  /** Called by a snapshot when its last holder lets go. */
  forget(snapshot: WasmSnapshot): void {
    if (this.#byImage.get(snapshot.image) !== snapshot) return;
    this.#byImage.delete(snapshot.image);
    releaseImage(snapshot.image, this.#pool);
  }

  #openConnection(): WasmConnection {
    const { capi, wasm } = this.sqlite3;
    const stack = wasm.pstack.pointer;
    try {
      const ppDb = wasm.pstack.allocPtr() as number;
      const rc = capi.sqlite3_open_v2(this.#path, ppDb, capi.SQLITE_OPEN_READONLY, this.vfs.name);
      const db = wasm.peekPtr(ppDb) as number;
      if (rc !== 0) {
        const error = sqliteError(this.sqlite3, db, rc);
        if (db) capi.sqlite3_close_v2(db);
        throw error;
      }
      const connection = new WasmConnection(this.sqlite3, db, { guarded: true });
      this.#open.add(connection);
      this.#epochs.set(connection, this.#epoch);
      return connection;
    } finally {
      wasm.pstack.restore(stack);
    }
  }

  #giveBack(connection: WasmConnection): void {
    if (this.#closed || !this.#open.has(connection)) return;
    if (this.#epochs.get(connection) !== this.#epoch) {
      this.#open.delete(connection);
      connection.close();
      return;
    }
    try {
      if (connection.inTransaction) connection.executeMultiple("ROLLBACK");
    } catch {
      // A connection that cannot roll back is closed rather than reused.
      this.#open.delete(connection);
      connection.close();
      return;
    }
    if (this.#idle.length < MAX_IDLE_CONNECTIONS) {
      this.#idle.push(connection);
    } else {
      this.#open.delete(connection);
      connection.close();
    }
  }
}
