/**
 * The `native` replica engine: each snapshot materialized into a file of its own ("generation") and read
 * by @libsql/client, read-only.
 *
 * A file is patched only while no connection reads it: a new snapshot goes into an idle generation file,
 * rewriting just the chunks that differ from what that file held (taken from another generation file when
 * one has them, from the stores otherwise), and queries move to it at their next transaction while those
 * in flight finish on the old one. Two files serve steady refreshes; a long transaction on an old snapshot
 * makes a third.
 *
 * @module
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Client, createClient } from "@libsql/client";
import {
  type InStatement,
  type IntMode,
  LibsqlError,
  type ResultSet,
  type Transaction,
} from "@libsql/core/api";
import type { ChunkSource } from "../chunk/source.ts";
import type { Manifest } from "../manifest/types.ts";
import {
  checkResult,
  type EngineConnection,
  type EngineMemory,
  type EngineSnapshot,
  namelessParameterError,
  replaceServed,
  type ReplicaEngine,
  type ResultLimits,
} from "./engine.ts";
import { type GenerationFile as FileContent, patchGenerationFile } from "./generation_file.ts";
import { type NativeFunction, NativeGate } from "./native_gate.ts";
import { loadSqlite3 } from "./wasm.ts";
import type { Sqlite3 } from "./vfs.ts";

/** Options of {@linkcode NativeEngine.create}. */
export interface NativeEngineOptions {
  chunks: ChunkSource;
  /** Where generation files live. @default {a new temporary directory, removed on close} */
  directory?: string | undefined;
  concurrency?: number | undefined;
  intMode?: IntMode | undefined;
}

interface GenerationFile extends FileContent {
  /** The snapshot reading it, if any. */
  snapshot: NativeSnapshot | undefined;
}

class NativeSnapshot implements EngineSnapshot {
  readonly manifest: Manifest;
  readonly preparedMs = Date.now();
  readonly chunksFetched: number;
  readonly file: GenerationFile;
  readonly client: Client;
  /** Compiles each statement under the replica's authorizer before `client` runs it (native_gate.ts). */
  readonly gate: NativeGate;
  #refs = 1;

  constructor(
    manifest: Manifest,
    file: GenerationFile,
    client: Client,
    gate: NativeGate,
    chunksFetched: number,
  ) {
    this.manifest = manifest;
    this.file = file;
    this.client = client;
    this.gate = gate;
    this.chunksFetched = chunksFetched;
  }

  retain(): void {
    this.#refs++;
  }

  release(): void {
    if (--this.#refs > 0) return;
    this.client.close();
    this.gate.close();
    if (this.file.snapshot === this) this.file.snapshot = undefined;
  }
}

/** The native engine. Create it with {@linkcode NativeEngine.create}. */
export class NativeEngine implements ReplicaEngine {
  readonly kind = "native" as const;
  readonly directory: string;
  readonly #ownsDirectory: boolean;
  readonly #chunks: ChunkSource;
  readonly #concurrency: number;
  readonly #intMode: IntMode;
  readonly #files: GenerationFile[] = [];
  readonly #sqlite3: Sqlite3;
  #nativeFunctions: NativeFunction[] | undefined;
  #indexChunks = new Map<string, Uint8Array>();
  #served: NativeSnapshot | undefined;
  #closed = false;
  #resultLimits: ResultLimits = { maxRows: 0, maxBytes: 0 };

  private constructor(
    directory: string,
    ownsDirectory: boolean,
    sqlite3: Sqlite3,
    options: NativeEngineOptions,
  ) {
    this.directory = directory;
    this.#sqlite3 = sqlite3;
    this.#ownsDirectory = ownsDirectory;
    this.#chunks = options.chunks;
    this.#concurrency = options.concurrency ?? 8;
    this.#intMode = options.intMode ?? "number";
  }

  /** Creates an engine whose files live in `directory` (made when missing) or a new temporary one. */
  static async create(options: NativeEngineOptions): Promise<NativeEngine> {
    const sqlite3 = await loadSqlite3();
    if (options.directory !== undefined) {
      const { mkdir } = await import("node:fs/promises");
      const directory = resolve(options.directory);
      await mkdir(directory, { recursive: true });
      return new NativeEngine(await mkdtemp(join(directory, "replica-")), true, sqlite3, options);
    }
    return new NativeEngine(await mkdtemp(join(tmpdir(), "tessera-replica-")), true, sqlite3, options);
  }

  async prepare(manifest: Manifest, signal: AbortSignal): Promise<EngineSnapshot> {
    if (this.#closed) throw new Error("the replica is closed");
    const file = this.#idleFile();
    // Claimed at once, so a second prepare running alongside picks another file.
    const claim = {} as NativeSnapshot;
    file.snapshot = claim;
    let client: Client | undefined;
    let gate: NativeGate | undefined;
    try {
      const fetched = await this.#patch(file, manifest, signal);
      client = createClient({
        url: `file:${encodeURIComponent(`file:${file.path}?mode=ro`)}`,
        intMode: this.#intMode,
      });
      // Opening is lazy in places: one query proves the file opens as a database.
      await client.execute("PRAGMA schema_version");
      this.#nativeFunctions ??= (await client.execute("PRAGMA function_list")).rows.map((row) => ({
        name: String(row.name),
        narg: Number(row.narg),
        type: String(row.type),
      }));
      gate = NativeGate.open(this.#sqlite3, { path: file.path, manifest }, this.#nativeFunctions);
      const snapshot = new NativeSnapshot(manifest, file, client, gate, fetched);
      file.snapshot = snapshot;
      if (this.#closed) {
        snapshot.release();
        throw new Error("the replica is closed");
      }
      return snapshot;
    } catch (error) {
      client?.close();
      gate?.close();
      if (file.snapshot === claim) file.snapshot = undefined;
      throw error;
    }
  }

  serve(snapshot: EngineSnapshot): void {
    if (!(snapshot instanceof NativeSnapshot) || !this.#files.includes(snapshot.file)) {
      throw new TypeError("Cannot serve a snapshot another engine prepared");
    }
    if (snapshot === this.#served) return;
    this.#served = replaceServed(this.#served, snapshot);
  }

  async connect(): Promise<EngineConnection> {
    const snapshot = this.#served;
    if (this.#closed || !snapshot) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
    snapshot.retain();
    const client = snapshot.client;
    let transaction: Transaction | undefined;
    let released = false;
    return {
      execute: async (stmt: InStatement): Promise<ResultSet> => {
        snapshot.gate.check(typeof stmt === "string" ? stmt : stmt.sql, false);
        if (typeof stmt !== "string" && isNamed(stmt.args)) refuseNamedForNameless(snapshot.gate, stmt.sql);
        const result = transaction ? await transaction.execute(stmt) : await client.execute(stmt);
        // libsql returns the whole result at once: it is checked after the statement.
        checkResult(result, this.#resultLimits);
        return result;
      },
      executeMultiple: async (sql: string) => {
        snapshot.gate.check(sql, true);
        return transaction ? await transaction.executeMultiple(sql) : await client.executeMultiple(sql);
      },
      describe: (sql: string) => Promise.resolve().then(() => snapshot.gate.describe(sql)),
      // A snapshot's file never changes while it is held, so any connection to it sees one snapshot.
      begin: async () => {
        transaction = await client.transaction("read");
      },
      commit: async () => {
        const t = transaction;
        transaction = undefined;
        await t?.commit();
      },
      rollback: async () => {
        const t = transaction;
        transaction = undefined;
        await t?.rollback();
      },
      get inTransaction() {
        return transaction !== undefined && !transaction.closed;
      },
      release: () => {
        if (released) return;
        released = true;
        transaction?.close();
        transaction = undefined;
        snapshot.release();
      },
    };
  }

  limitResults(limits: ResultLimits): void {
    this.#resultLimits = { ...limits };
  }

  memory(): EngineMemory {
    return { chunkBytes: 0, chunks: 0, snapshots: this.#files.filter((f) => f.snapshot).length };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const served = this.#served;
    this.#served = undefined;
    served?.release();
    try {
      // A file claimed by a prepare in flight has no client yet.
      for (const file of this.#files) {
        file.snapshot?.client?.close();
        file.snapshot?.gate?.close();
      }
    } finally {
      if (this.#ownsDirectory) rm(this.directory, { recursive: true, force: true }).catch(() => {});
    }
  }

  /** The generation files, for tests and status. */
  get files(): ReadonlyArray<{ path: string; inUse: boolean }> {
    return this.#files.map((f) => ({ path: f.path, inUse: f.snapshot !== undefined }));
  }

  #idleFile(): GenerationFile {
    // An idle file whose content is known needs only the chunks that differ; any idle one is correct.
    const idle = this.#files.filter((f) => f.snapshot === undefined);
    const known = idle.find((f) => f.ids !== undefined);
    const chosen = known ?? idle[0];
    if (chosen) return chosen;
    const file: GenerationFile = {
      path: join(this.directory, `generation-${this.#files.length + 1}.db`),
      ids: undefined,
      chunkSize: 0,
      snapshot: undefined,
    };
    this.#files.push(file);
    return file;
  }

  /** Makes `file` hold the manifest's image; returns the chunks fetched from the stores. */
  async #patch(file: GenerationFile, manifest: Manifest, signal: AbortSignal): Promise<number> {
    const previous = this.#indexChunks;
    const next = new Map<string, Uint8Array>();
    const fetched = await patchGenerationFile(file, manifest, {
      chunks: this.#chunks,
      others: this.#files,
      indexCache: {
        get: (hex: string) => previous.get(hex) ?? next.get(hex),
        set: (hex: string, b: Uint8Array) => next.set(hex, b),
      },
      concurrency: this.#concurrency,
      signal,
    });
    // Only the newest manifest's index chunks are kept: the next one shares most of them.
    this.#indexChunks = next;
    return fetched;
  }
}

function isNamed(args: unknown): boolean {
  return typeof args === "object" && args !== null && !Array.isArray(args);
}

/**
 * libsql aborts the whole process when named arguments meet a nameless `?` parameter: refuse them first,
 * as the wasm engine does.
 */
function refuseNamedForNameless(gate: NativeGate, sql: string): void {
  const at = gate.describe(sql).params.findIndex((p) => p.name === null);
  if (at >= 0) {
    throw namelessParameterError(at + 1);
  }
}
