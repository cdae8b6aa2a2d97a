/**
 * The worker that runs a lazy replica's statements too large for memory (see `offload.ts`): its own
 * sqlite-wasm, the same VFS and guarded connection, and pages from chunks the engine's thread hands over
 * one batch at a time. Here a read may wait: the worker blocks on `Atomics.wait` until the batch is in the
 * shared buffer, while the engine's thread fetches it and goes on serving other queries.
 *
 * Web APIs only (a Worker's `self`), so it runs under Deno, Bun and browsers.
 *
 * @module
 */

import type { ResultSet, Value } from "@libsql/core/api";
import { LibsqlError } from "@libsql/core/api";
import type { SnapshotImage } from "./image.ts";
import { WasmConnection } from "./sql.ts";
import { replicaVfs, type Sqlite3 } from "./vfs.ts";
import { loadSqlite3 } from "./wasm.ts";
import {
  CONTROL,
  type ImageShape,
  type OffloadReply,
  type OffloadRequest,
  STATE,
  type WireError,
} from "./_offload_wire.ts";

interface Scope {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
}
const scope = globalThis as unknown as Scope;

let control: Int32Array;
let data: Uint8Array;
let sqlite3: Sqlite3;
let image: SnapshotImage | undefined;
let connection: WasmConnection | undefined;
let unregister: (() => void) | undefined;
let runId = 0;
/** Chunks handed over, by index: the most recent batches only. */
const local = new Map<number, Uint8Array>();
let localBytes = 0;
let failed = false;

function imageOf(shape: ImageShape): SnapshotImage {
  return {
    manifest: undefined as never,
    generation: shape.generation,
    size: shape.size,
    chunkSize: shape.chunkSize,
    chunk0: shape.chunk0,
    ids: [],
    locations: [],
    keys: shape.keys,
    lazy: true,
    preparedMs: 0,
    chunksFetched: 0,
  };
}

/** Asks the engine's thread for chunk `index` (and the ones after it) and waits for them. */
function fetchChunk(index: number): Uint8Array | undefined {
  if (failed) return undefined;
  Atomics.store(control, CONTROL.state, STATE.waiting);
  scope.postMessage({ type: "need", run: runId, index } satisfies OffloadReply);
  Atomics.wait(control, CONTROL.state, STATE.waiting);
  if (Atomics.load(control, CONTROL.state) !== STATE.ready) {
    failed = true; // the engine's thread keeps the reason; this run fails with it
    return undefined;
  }
  const count = control[CONTROL.count]!;
  const first = control[CONTROL.first]!;
  const { chunkSize, size } = image!;
  for (let k = 0; k < count; k++) {
    const at = first + k;
    const length = Math.min(chunkSize, size - at * chunkSize);
    const bytes = data.slice(k * chunkSize, k * chunkSize + length);
    if (!local.has(at)) localBytes += bytes.length;
    local.delete(at);
    local.set(at, bytes);
  }
  // Keeps about two batches: a scan never returns to a chunk behind it, a b-tree walk rarely.
  for (const [at, bytes] of local) {
    if (localBytes <= 2 * data.length) break;
    local.delete(at);
    localBytes -= bytes.length;
  }
  return local.get(index);
}

function ensureConnection(shape: ImageShape | undefined): WasmConnection {
  if (shape) {
    connection?.close();
    unregister?.();
    connection = undefined;
    local.clear();
    localBytes = 0;
    image = imageOf(shape);
  }
  if (connection) return connection;
  const current = image!;
  const vfs = replicaVfs(sqlite3);
  const path = `/tessera/offload-${current.generation}.db`;
  unregister = vfs.register(path, {
    imageForTransaction: () => current,
    adopt: () => {},
    drop: () => {},
    chunk: (_image, index) => {
      const key = current.keys[index - 1];
      if (key === undefined) return undefined;
      if (key === "") return null;
      const held = local.get(index);
      return held ?? fetchChunk(index);
    },
  });
  connection = new WasmConnection(sqlite3, vfs.open(path), { guarded: true });
  return connection;
}

function wireError(error: unknown): WireError {
  if (error instanceof LibsqlError) {
    const prefix = `${error.code}: `;
    const message = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return {
      kind: "libsql",
      message,
      code: error.code,
      extendedCode: error.extendedCode,
      rawCode: error.rawCode,
    };
  }
  const e = error as Error;
  return {
    kind: e?.name === "RangeError" ? "range" : e?.name === "TypeError" ? "type" : "error",
    message: String(e?.message ?? e),
  };
}

scope.onmessage = async (event: MessageEvent) => {
  const message = event.data as OffloadRequest;
  if (message.type === "init") {
    control = new Int32Array(message.control);
    data = new Uint8Array(message.data);
    sqlite3 = await loadSqlite3();
    scope.postMessage({ type: "ready" } satisfies OffloadReply);
    return;
  }
  runId = message.run;
  failed = false;
  let reply: OffloadReply;
  try {
    if (message.image) ensureConnection(message.image);
    if (!image || image.generation !== message.generation) {
      throw new Error(`the worker holds image ${image?.generation ?? "none"}, not ${message.generation}`);
    }
    const db = ensureConnection(undefined);
    let result: ResultSet;
    try {
      db.timeLimitMs = message.timeLimitMs ?? 0;
      db.startedMs = message.startedMs ?? 0;
      // Bounded here, while SQLite steps: a result past a bound is never built, nor sent back.
      db.maxRows = message.maxRows ?? 0;
      db.maxBytes = message.maxBytes ?? 0;
      result = db.executeConverted(message.sql, message.args, message.intMode);
    } finally {
      // Each run stands alone: nothing of a transaction is left for the next statement.
      if (db.inTransaction) db.executeMultiple("ROLLBACK");
    }
    reply = {
      type: "done",
      run: message.run,
      fetchFailed: failed,
      result: {
        columns: result.columns,
        columnTypes: result.columnTypes,
        rows: result.rows.map((row) => Array.from(row as ArrayLike<Value>)),
        rowsAffected: result.rowsAffected,
        lastInsertRowid: result.lastInsertRowid,
      },
    };
  } catch (error) {
    reply = { type: "failed", run: message.run, error: wireError(error), fetchFailed: failed };
  }
  scope.postMessage(reply);
};
