/**
 * Statements too large for a lazy replica's memory cap run in a worker, where a read may block: the worker
 * (`_offload_worker.ts`) asks for a chunk and waits on `Atomics.wait`; this thread fetches it (and, when the
 * statement walks consecutive chunks, the batches after it), copies it into a shared buffer and wakes the
 * worker. Only a batch or two is held at a time, so a full scan of a database larger than the cap runs
 * within it, and this thread's event loop keeps serving other queries meanwhile.
 *
 * Needs `Worker`, `SharedArrayBuffer` and `Atomics` (Deno, Bun, browsers that are cross-origin isolated);
 * {@linkcode Offloader.available} says whether this runtime has them.
 *
 * @module
 */

import { type IntMode, LibsqlError, type ResultSet } from "@libsql/core/api";
import { rowMaker, type SqlArgs, SqlResultSet } from "./_values.ts";
import type { SnapshotImage } from "./image.ts";
import {
  CONTROL,
  CONTROL_BYTES,
  type OffloadReply,
  type OffloadRequest,
  STATE,
  type WireError,
} from "./_offload_wire.ts";

/** Bytes of chunks handed to the worker at once (32 chunks of 64 KiB). */
export const BATCH_BYTES = 2 * 1024 * 1024;
/** How long a worker with nothing to do stays, where it cannot be unreferenced (Deno). */
const IDLE_MS = 1000;
/** Batches fetched ahead of a statement that walks consecutive chunks. */
const BATCHES_AHEAD = 8;

/** The worker could not be started here: statements run on the engine's thread instead. */
export class OffloadUnavailable extends Error {
  override name = "OffloadUnavailable";
}

/** One statement for the worker: its SQL and its arguments as `toSqlArgs` converted them. */
export interface OffloadedOp {
  sql: string;
  args: SqlArgs;
  intMode: IntMode;
  /** The statement's time limit in ms (0 or absent: none). */
  timeLimitMs?: number | undefined;
  /** When the statement started, in ms since the epoch: its time limit counts from then. */
  startedMs?: number | undefined;
  /** Most rows the statement may return (0 or absent: no bound); see `WasmConnection.maxRows`. */
  maxRows?: number | undefined;
  /** Most bytes of values the statement may return (0 or absent: no bound); see `WasmConnection.maxBytes`. */
  maxBytes?: number | undefined;
}

/** What the engine lends the offloader: chunks of an image, pinned until `release`. */
export interface OffloadChunks {
  /** Fetches (or finds) chunks `indexes` of `image`; `null` for an all-zero chunk. */
  take(
    image: SnapshotImage,
    indexes: readonly number[],
  ): Promise<{ bytes: (Uint8Array | null)[]; release(): void }>;
  /** Starts fetching chunks `indexes` into memory, for a statement about to need them. */
  ahead(image: SnapshotImage, indexes: readonly number[]): void;
  /** Bytes of chunks that may be fetched ahead without pushing out others. */
  room(): number;
  /** The statement that chunks were fetched ahead for has ended. */
  done(): void;
}

interface Running {
  run: number;
  image: SnapshotImage;
  /** The end (exclusive) of the last batch handed over: a request there continues a walk. */
  end: number;
  /** Chunks the next batch of a walk holds: one, then doubling while the walk goes on. */
  ahead: number;
  /** Where a read outside the walk would continue: a read there starts a new walk. */
  other: number;
  fetchError: unknown;
  resolve: (result: ResultSet | undefined) => void;
  reject: (error: unknown) => void;
}

/** A worker running one statement at a time for a wasm engine. */
export class Offloader {
  readonly #chunks: OffloadChunks;
  #worker: Worker | undefined;
  #ready: Promise<void> | undefined;
  #failStart: ((error: unknown) => void) | undefined;
  #control!: Int32Array;
  #data!: Uint8Array;
  #queue: Promise<unknown> = Promise.resolve();
  #generation = 0;
  #nextRun = 1;
  #running: Running | undefined;
  #closed = false;
  #pending = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Statements run here, for status and tests. */
  statements = 0;

  constructor(chunks: OffloadChunks) {
    this.#chunks = chunks;
  }

  /** True when this runtime can run the worker. */
  static available(): boolean {
    return typeof Worker === "function" && typeof SharedArrayBuffer === "function" && mayReadWorker() &&
      typeof Atomics === "object" &&
      (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
  }

  /** Runs `op` on `image` in the worker, after the statements queued before it. */
  run(image: SnapshotImage, op: OffloadedOp): Promise<ResultSet | undefined> {
    this.#pending++;
    clearTimeout(this.#idleTimer);
    const result = this.#queue.then(() => this.#runNow(image, op)).finally(() => {
      if (--this.#pending === 0) this.#idle();
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Stops the worker; a statement running in it fails with `CLIENT_CLOSED`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    this.#stopWorker(new LibsqlError("The client is closed", "CLIENT_CLOSED"));
  }

  // An idle worker must not keep the process alive: Bun's can be unreferenced; Deno's cannot, so it stops
  // after a second with nothing to do (the next large statement starts another).
  #idle(): void {
    const worker = this.#worker as (Worker & { unref?: () => void }) | undefined;
    if (!worker) return;
    if (typeof worker.unref === "function") {
      worker.unref();
      return;
    }
    this.#idleTimer = setTimeout(() => {
      if (this.#pending === 0) this.#stopWorker(undefined);
    }, IDLE_MS);
  }

  #stopWorker(reason: unknown): void {
    // A statement waiting for the worker to start fails with the reason rather than waiting for ever.
    this.#failStart?.(reason ?? new Error("the offload worker stopped"));
    this.#failStart = undefined;
    this.#ready?.catch(() => {});
    this.#worker?.terminate();
    this.#worker = undefined;
    this.#ready = undefined;
    this.#generation = 0;
    if (this.#running) this.#running.reject(reason ?? new Error("the offload worker stopped"));
    this.#running = undefined;
    this.#chunks.done();
  }

  #start(): Promise<void> {
    const current = this.#worker as (Worker & { ref?: () => void }) | undefined;
    if (this.#ready && current) {
      current.ref?.();
      return this.#ready;
    }
    let worker: Worker;
    try {
      worker = new Worker(WORKER_URL.href, { type: "module" });
    } catch (error) {
      throw new OffloadUnavailable(`the offload worker cannot start: ${(error as Error)?.message ?? error}`);
    }
    this.#worker = worker;
    this.#generation = 0;
    this.#control = new Int32Array(new SharedArrayBuffer(CONTROL_BYTES));
    this.#data = new Uint8Array(new SharedArrayBuffer(BATCH_BYTES));
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#failStart = reject;
      let started = false;
      worker.onerror = (event) => {
        event.preventDefault?.();
        const message = `the offload worker failed: ${event.message ?? event}`;
        const error = started ? new Error(message) : new OffloadUnavailable(message);
        reject(error);
        // The next statement starts a new worker.
        if (this.#worker === worker) this.#stopWorker(error);
      };
      worker.onmessage = (event: MessageEvent) => {
        const reply = event.data as OffloadReply;
        if (reply.type === "ready") {
          started = true;
          this.#failStart = undefined;
          resolve();
        } else this.#onReply(reply);
      };
    });
    worker.postMessage(
      {
        type: "init",
        control: this.#control.buffer as SharedArrayBuffer,
        data: this.#data.buffer as SharedArrayBuffer,
      } satisfies OffloadRequest,
    );
    return this.#ready;
  }

  async #runNow(image: SnapshotImage, op: OffloadedOp): Promise<ResultSet | undefined> {
    if (this.#closed) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
    await this.#start();
    if (this.#closed || !this.#worker) throw new LibsqlError("The client is closed", "CLIENT_CLOSED");
    this.statements++;
    const run = this.#nextRun++;
    const sendImage = image.generation !== this.#generation;
    return await new Promise<ResultSet | undefined>((resolve, reject) => {
      this.#running = { run, image, end: -1, ahead: 1, other: -1, fetchError: undefined, resolve, reject };
      const request: OffloadRequest = {
        type: "run",
        run,
        generation: image.generation,
        image: sendImage
          ? {
            generation: image.generation,
            size: image.size,
            chunkSize: image.chunkSize,
            chunk0: image.chunk0,
            keys: image.keys,
          }
          : undefined,
        sql: op.sql,
        args: op.args,
        intMode: op.intMode,
        timeLimitMs: op.timeLimitMs,
        startedMs: op.startedMs,
        maxRows: op.maxRows,
        maxBytes: op.maxBytes,
      };
      try {
        this.#worker!.postMessage(request);
      } catch (error) {
        this.#running = undefined;
        reject(error);
        return;
      }
      // Only once the worker has the image: a run that never reached it must send it again.
      this.#generation = image.generation;
    });
  }

  #onReply(reply: Exclude<OffloadReply, { type: "ready" }>): void {
    const running = this.#running;
    if (!running || reply.run !== running.run) return;
    if (reply.type === "need") {
      void this.#serve(running, reply.index);
      return;
    }
    this.#running = undefined;
    this.#chunks.done();
    if (reply.fetchFailed && running.fetchError !== undefined) {
      // A read failed and SQLite went on (integrity_check reports it as a row): the statement fails instead.
      running.reject(running.fetchError);
    } else if (reply.type === "done") {
      const r = reply.result;
      running.resolve(
        new SqlResultSet(
          r.columns,
          r.columnTypes,
          r.rows.map(rowMaker(r.columns)),
          r.rowsAffected,
          r.lastInsertRowid,
        ),
      );
    } else {
      running.reject(fromWire(reply.error));
    }
  }

  /** Hands chunk `index` (and, on a walk, the batch from it) to the waiting worker. */
  async #serve(running: Running, index: number): Promise<void> {
    const { image } = running;
    const perBatch = Math.max(1, Math.floor(BATCH_BYTES / image.chunkSize));
    // A walk goes on where its last batch ended; a read elsewhere (a b-tree's interior page, found further
    // on) is served alone and leaves the walk as it was, unless the next read continues from it instead.
    const walking = index === running.end;
    const switched = !walking && index === running.other;
    // A walk that moves on past an interior page (its new leaves follow it) keeps its pace.
    if (walking || switched) running.ahead = Math.min(perBatch, running.ahead * 2);
    let count = walking || switched ? Math.min(running.ahead, image.keys.length + 1 - index) : 1;
    // Taken now: a worker replaced while this waits has buffers of its own.
    const control = this.#control;
    const data = this.#data;
    const worker = this.#worker;
    try {
      let taken;
      try {
        taken = await this.#chunks.take(image, Array.from({ length: count }, (_, k) => index + k));
      } catch (error) {
        // The chunks after the one asked for are only ahead of need: one of them failing must not fail it.
        if (count === 1) throw error;
        count = 1;
        taken = await this.#chunks.take(image, [index]);
      }
      try {
        if (this.#worker !== worker) return;
        taken.bytes.forEach((bytes, k) => {
          const at = k * image.chunkSize;
          if (bytes === null) data.fill(0, at, at + image.chunkSize);
          else data.set(bytes, at);
        });
      } finally {
        taken.release();
      }
      if (walking || switched) running.end = index + count;
      else running.other = index + 1;
      control[CONTROL.count] = count;
      control[CONTROL.first] = index;
      Atomics.store(control, CONTROL.state, STATE.ready);
    } catch (error) {
      if (this.#worker !== worker) return;
      running.fetchError = error;
      Atomics.store(control, CONTROL.state, STATE.failed);
    }
    Atomics.notify(control, CONTROL.state);
    if ((walking || switched) && count === perBatch) {
      // A long walk: batches fetched while the worker reads this one, as many as fit beside what memory
      // holds.
      const ahead = Math.min(BATCHES_AHEAD, Math.floor(this.#chunks.room() / BATCH_BYTES));
      const first = index + count;
      const last = Math.min(image.keys.length, first + ahead * perBatch - 1);
      if (last >= first) {
        this.#chunks.ahead(image, Array.from({ length: last - first + 1 }, (_, k) => first + k));
      }
    }
  }
}

function fromWire(error: WireError): Error {
  switch (error.kind) {
    case "libsql":
      return new LibsqlError(error.message, error.code!, error.extendedCode, error.rawCode);
    case "range":
      return new RangeError(error.message);
    case "type":
      return new TypeError(error.message);
    default:
      return new Error(error.message);
  }
}

const WORKER_URL = new URL("./_offload_worker.ts", import.meta.url);

/** False under a Deno denied reading the worker's module (it would fail to start, noisily). */
function mayReadWorker(): boolean {
  const deno = (globalThis as {
    Deno?: { permissions?: { querySync?(d: { name: "read"; path: URL }): { state: string } } };
  }).Deno;
  if (WORKER_URL.protocol !== "file:" || typeof deno?.permissions?.querySync !== "function") return true;
  try {
    return deno.permissions.querySync({ name: "read", path: WORKER_URL }).state === "granted";
  } catch {
    return true;
  }
}
