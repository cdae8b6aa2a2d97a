/**
 * How the native engine enforces guard.ts: every statement is first compiled, never run, by sqlite-wasm on
 * a guarded connection reading the same generation file, and runs on @libsql/client only if SQLite
 * accepted it there.
 *
 * Why not on libsql's own connection: `libsql` 0.5 (under @libsql/client 0.18) exposes no
 * `sqlite3_set_authorizer` callback, limit or function removal. Its `Database.authorizer(rules)` only
 * allows or denies tables and denies every function call, pragma, transaction and recursive CTE
 * (`SELECT count(*)` fails with "not authorized to use function: count"). Its build has `writefile()`,
 * `readfile()` and `fsdir`, and a read-only (`mode=ro`) connection still runs `VACUUM INTO` and `ATTACH`,
 * which create and write files (checked by experiment; see docs/REPLICAS.md). A pragma also takes effect
 * while it is compiled, so compiling untrusted SQL on a libsql connection (for `EXPLAIN`, say) is unsafe.
 *
 * The gate is a different SQLite build, so a statement is refused whenever the gate cannot compile it:
 * functions only libsql has are registered there as stubs (the authorizer still sees and judges their
 * names), but virtual table modules only libsql has (`fts3`, `fts4`, `geopoly`, `vector_top_k`,
 * `generate_series`, `carray`) are not, so native replicas refuse queries on them.
 *
 * @module
 */

import { closeSync, openSync, readSync } from "node:fs";
import type { Manifest } from "../manifest/types.ts";
import { describeStatement, type StatementDescription } from "./describe.ts";
import { checkStatements, functionNames, type Guard, guardConnection, registerStubs } from "./guard.ts";
import type { SnapshotImage } from "./image.ts";
import { type ReplicaVfs, replicaVfs, type Sqlite3 } from "./vfs.ts";

/** A function of the native build: its name, argument count and type (`s`, `a` or `w`). */
export interface NativeFunction {
  name: string;
  narg: number;
  type: string;
}

/** What the gate reads: a generation file and the manifest it holds. */
export interface GateFile {
  path: string;
  manifest: Manifest;
}

const CACHED_CHUNKS = 8;
const CACHED_VERDICTS = 256;
let nextPath = 1;

/** A guarded sqlite-wasm connection over one generation file. Close it when the snapshot goes. */
export class NativeGate {
  readonly #sqlite3: Sqlite3;
  readonly #db: number;
  readonly #guard: Guard;
  readonly #fd: number;
  readonly #unregister: () => void;
  readonly #accepted = new Set<string>();
  #closed = false;

  private constructor(sqlite3: Sqlite3, db: number, guard: Guard, fd: number, unregister: () => void) {
    this.#sqlite3 = sqlite3;
    this.#db = db;
    this.#guard = guard;
    this.#fd = fd;
    this.#unregister = unregister;
  }

  /**
   * Opens a gate over `file`, with stubs for the functions of `nativeFunctions` the wasm build lacks.
   */
  static open(sqlite3: Sqlite3, file: GateFile, nativeFunctions: readonly NativeFunction[]): NativeGate {
    const vfs: ReplicaVfs = replicaVfs(sqlite3);
    const fd = openSync(file.path, "r");
    const { image, readChunk } = fileImage(fd, file.manifest);
    const path = `/tessera/native-gate-${nextPath++}.db`;
    let unregister: (() => void) | undefined;
    let db = 0;
    try {
      unregister = vfs.register(path, {
        imageForTransaction: () => image,
        adopt: () => {},
        drop: () => {},
        chunk: (_image, index) => readChunk(index),
      });
      db = vfs.open(path);
      const known = functionNames(sqlite3, db);
      const seen = new Set<string>();
      const stubs = nativeFunctions.filter((f) => {
        const name = f.name.toLowerCase();
        const key = `${name}/${f.narg}`;
        if (known.has(name) || seen.has(key)) return false;
        seen.add(key);
        return true;
      }).map((f) => ({ name: f.name, narg: f.narg, aggregate: f.type !== "s" }));
      const guard = guardConnection(sqlite3, db);
      registerStubs(sqlite3, db, stubs);
      return new NativeGate(sqlite3, db, guard, fd, unregister);
    } catch (error) {
      if (db) sqlite3.capi.sqlite3_close_v2(db);
      unregister?.();
      closeSync(fd);
      throw error;
    }
  }

  /**
   * Throws the `LibsqlError` a replica answers for `sql` (`SQLITE_AUTH`, `SQLITE_READONLY` or SQLite's
   * compile error), or returns when libsql may run it.
   *
   * @param all Check every statement (`executeMultiple`), not just the first (`execute`).
   */
  check(sql: string, all: boolean): void {
    if (this.#closed) throw new Error("the native gate is closed");
    const key = (all ? "*" : "1") + sql;
    if (this.#accepted.has(key)) return;
    checkStatements(this.#sqlite3, this.#db, this.#guard, sql, { all, strict: true });
    if (this.#accepted.size >= CACHED_VERDICTS) this.#accepted.clear();
    this.#accepted.add(key);
  }

  /** Describes the first statement of `sql` as SQLite compiles it here (see describe.ts). */
  describe(sql: string): StatementDescription {
    if (this.#closed) throw new Error("the native gate is closed");
    return describeStatement(this.#sqlite3, this.#db, this.#guard, sql);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sqlite3.capi.sqlite3_close_v2(this.#db);
    this.#unregister();
    closeSync(this.#fd);
  }
}

/** An image whose chunks are read from the generation file when SQLite asks (it reads little to compile). */
function fileImage(
  fd: number,
  manifest: Manifest,
): { image: SnapshotImage; readChunk: (index: number) => Uint8Array } {
  const { chunkSize, imageLength } = manifest;
  const cache = new Map<number, Uint8Array>();
  const readChunk = (index: number): Uint8Array => {
    const hit = cache.get(index);
    if (hit) return hit;
    const length = Math.max(0, Math.min(chunkSize, imageLength - index * chunkSize));
    const bytes = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, bytes, done, length - done, index * chunkSize + done);
      if (n === 0) break;
      done += n;
    }
    if (cache.size >= CACHED_CHUNKS) cache.delete(cache.keys().next().value!);
    cache.set(index, bytes);
    return bytes;
  };
  const image: SnapshotImage = {
    manifest,
    generation: 0,
    size: imageLength,
    chunkSize,
    chunk0: readChunk(0),
    ids: [],
    locations: [],
    keys: [],
    lazy: false,
    preparedMs: Date.now(),
    chunksFetched: 0,
  };
  return { image, readChunk };
}
