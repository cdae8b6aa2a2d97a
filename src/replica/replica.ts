/**
 * A read replica: @libsql/client's `Client` interface over snapshots of a database in a store, kept fresh
 * by a background poller and switched between transactions, never inside one.
 *
 * @module
 */

import {
  type Client,
  type InArgs,
  type InStatement,
  type IntMode,
  LibsqlBatchError,
  LibsqlError,
  type Replicated,
  type ResultSet,
  type Transaction,
  type TransactionMode,
} from "@libsql/core/api";
import { toHex } from "../bytes.ts";
import { TesseraError } from "../errors.ts";
import { decodePointer } from "../manifest/codec.ts";
import { pointerKey } from "../manifest/keys.ts";
import { type LoadedManifest, loadPointed } from "../restore/manifest_source.ts";
import type { BlobStore } from "../store/types.ts";
import type { EngineConnection, EngineMemory, EngineSnapshot, ReplicaEngine } from "./engine.ts";
import { parseTesseraPragma, TESSERA_PRAGMAS, type TesseraPragma } from "./pragmas.ts";

/** `refresh` levels, as Verneuil's `verneuil_snapshot_refresh` pragma takes them. */
export type RefreshLevel = 0 | 1 | 2;

/** Where a replica's snapshots come from. */
export type ReplicaOrigin =
  | { kind: "database"; store: BlobStore; name: string }
  | { kind: "manifest"; loaded: LoadedManifest };

/** Freshness settings of a replica. */
export interface FreshnessOptions {
  /** Switch to the newest prepared snapshot at the start of every transaction. @default {true} */
  autoRefresh?: boolean | undefined;
  /** How often the background poller checks the pointer; 0 turns polling off. @default {1000} */
  pollIntervalMs?: number | undefined;
  /** When set, a transaction first waits for a check of the store if the last successful one is older. */
  maxStalenessMs?: number | undefined;
  /** How integers come back, as @libsql/client's `intMode`. @default {"number"} */
  intMode?: IntMode | undefined;
}

/** What a replica reports about itself. */
export interface ReplicaStatus {
  engine: "wasm" | "native";
  /** The database's name in the store, or the manifest it was pinned to. */
  database: string;
  /** Polls the store for newer snapshots (false when opened from a manifest). */
  follows: boolean;
  autoRefresh: boolean;
  pollIntervalMs: number;
  /** The snapshot new transactions see. */
  sequence: number;
  /** When the source file last changed before that snapshot was taken (ms since the epoch). */
  snapshotCtime: number;
  /** When this process finished fetching that snapshot (ms since the epoch). */
  snapshotUpdated: number;
  /** At most how far behind the store the served snapshot may be, in ms (see docs/REPLICAS.md). */
  lagMs: number;
  /** The newest snapshot prepared (served at the next transaction when `autoRefresh` is on). */
  newestSequence: number;
  checks: number;
  /** Checks answered "not modified" (a 304 from S3). */
  notModified: number;
  lastCheckMs: number | undefined;
  lastSuccessMs: number | undefined;
  /** Failed checks in a row; 0 once one succeeds. */
  consecutiveFailures: number;
  lastError: { code: string; message: string; atMs: number } | undefined;
  memory: EngineMemory;
  closed: boolean;
}

/** Events a replica emits. */
export interface ReplicaEvents {
  /** A newer snapshot was prepared. */
  snapshot: { sequence: number; chunksFetched: number; preparedMs: number };
  /** A check or a refresh failed; the replica keeps serving the snapshot it had. */
  error: { error: Error; atMs: number };
}

/** How long a check waits for the pointer or a manifest. */
const SMALL_READ_TIMEOUT_MS = 10_000;

type Listener<K extends keyof ReplicaEvents> = (event: ReplicaEvents[K]) => void;

function readonlyError(): LibsqlError {
  return new LibsqlError(
    "SQLITE_READONLY: attempt to write a readonly database",
    "SQLITE_READONLY",
    "SQLITE_READONLY",
    8,
  );
}

function closedError(): LibsqlError {
  return new LibsqlError("The client is closed", "CLIENT_CLOSED");
}

function checkMode(mode: TransactionMode): void {
  if (mode === "write") throw readonlyError();
  if (mode !== "read" && mode !== "deferred") {
    throw RangeError('Unknown transaction mode, supported values are "write", "read" and "deferred"');
  }
}

function normalize(stmt: InStatement | [string, InArgs?]): InStatement {
  if (Array.isArray(stmt)) return { sql: stmt[0], args: stmt[1] ?? [] };
  return stmt;
}

function sqlOf(stmt: InStatement): string {
  return typeof stmt === "string" ? stmt : stmt.sql;
}

function asBatchError(error: unknown, index: number): unknown {
  if (error instanceof LibsqlBatchError) return error;
  if (error instanceof LibsqlError) {
    return new LibsqlBatchError(
      error.message,
      index,
      error.code,
      error.extendedCode,
      error.rawCode,
      error.cause instanceof Error ? error.cause : undefined,
    );
  }
  return error;
}

function unrefTimer(handle: unknown): void {
  if (typeof (handle as { unref?: unknown })?.unref === "function") {
    (handle as { unref(): void }).unref();
    return;
  }
  const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
  if (typeof handle === "number") deno?.unrefTimer?.(handle);
}

/**
 * A read-only `Client` over a replicated database. Create one with `openReplica` (src/replica/open.ts).
 */
export class Replica implements Client {
  readonly protocol = "file";
  readonly #engine: ReplicaEngine;
  readonly #origin: ReplicaOrigin;
  readonly #intMode: IntMode;
  readonly #pollIntervalMs: number;
  readonly #maxStalenessMs: number | undefined;
  #autoRefresh: boolean;
  #closed = false;
  readonly #stop = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;

  #newest: EngineSnapshot | undefined;
  #served: EngineSnapshot | undefined;
  #etag: string | undefined;
  #newestPointerSha = "";
  /** The newest snapshot was known to be the store's newest at this time. */
  #newestFreshAsOf = 0;
  #servedFreshAsOf = 0;
  #checking: Promise<boolean> | undefined;
  #checks = 0;
  #notModified = 0;
  #lastCheckMs: number | undefined;
  #lastSuccessMs: number | undefined;
  #failures = 0;
  #lastError: ReplicaStatus["lastError"];
  readonly #listeners = { snapshot: new Set<Listener<"snapshot">>(), error: new Set<Listener<"error">>() };

  private constructor(engine: ReplicaEngine, origin: ReplicaOrigin, options: FreshnessOptions) {
    this.#engine = engine;
    this.#origin = origin;
    this.#intMode = options.intMode ?? "number";
    if (!["number", "bigint", "string"].includes(this.#intMode)) {
      throw new RangeError(
        `Cannot open a replica: intMode ${JSON.stringify(this.#intMode)} is not number, bigint or string`,
      );
    }
    this.#autoRefresh = options.autoRefresh ?? true;
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    if (!Number.isFinite(this.#pollIntervalMs) || this.#pollIntervalMs < 0) {
      throw new RangeError(`Cannot open a replica: pollIntervalMs ${this.#pollIntervalMs} is not a duration`);
    }
    this.#maxStalenessMs = options.maxStalenessMs;
    if (this.#maxStalenessMs !== undefined && !(this.#maxStalenessMs >= 0)) {
      throw new RangeError(`Cannot open a replica: maxStalenessMs ${this.#maxStalenessMs} is not a duration`);
    }
  }

  /**
   * Opens a replica: fetches and prepares the first snapshot (the call fails when it cannot), then polls.
   * The engine is closed when opening fails.
   */
  static async open(
    engine: ReplicaEngine,
    origin: ReplicaOrigin,
    options: FreshnessOptions & { signal?: AbortSignal | undefined } = {},
  ): Promise<Replica> {
    let replica: Replica;
    try {
      replica = new Replica(engine, origin, options);
    } catch (error) {
      engine.close();
      throw error;
    }
    const onAbort = () => replica.#stop.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      options.signal?.throwIfAborted();
      if (origin.kind === "manifest") {
        const snapshot = await engine.prepare(origin.loaded.manifest, replica.#stop.signal);
        replica.#newest = snapshot;
        replica.#newestFreshAsOf = snapshot.preparedMs;
      } else {
        await replica.#runCheck();
      }
      replica.#adopt();
      // An abort that lands after the last fetch would otherwise leave a replica whose checks all fail.
      options.signal?.throwIfAborted();
    } catch (error) {
      replica.close();
      throw options.signal?.aborted ? options.signal.reason : error;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    replica.#schedule();
    return replica;
  }

  // --- the Client interface ---

  get closed(): boolean {
    return this.#closed;
  }

  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  async execute(stmtOrSql: InStatement, args?: InArgs): Promise<ResultSet> {
    this.#checkOpen();
    const stmt: InStatement = typeof stmtOrSql === "string"
      ? { sql: stmtOrSql, args: args ?? [] }
      : stmtOrSql;
    const pragma = parseTesseraPragma(sqlOf(stmt));
    const connection = await this.#begin(pragma === undefined);
    try {
      if (pragma) return await this.#pragma(pragma, connection);
      return await connection.execute(stmt, this.#intMode);
    } finally {
      connection.release();
    }
  }

  async batch(
    stmts: Array<InStatement | [string, InArgs?]>,
    mode: TransactionMode = "deferred",
  ): Promise<ResultSet[]> {
    this.#checkOpen();
    checkMode(mode);
    const connection = await this.#begin(true);
    try {
      await connection.begin();
      const results = await runBatch(
        connection,
        stmts.map(normalize),
        this.#intMode,
        (p, c) => this.#pragma(p, c),
      );
      await connection.commit();
      return results;
    } finally {
      connection.release();
    }
  }

  async migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    return await this.batch(stmts, "deferred");
  }

  async transaction(mode: TransactionMode = "read"): Promise<Transaction> {
    this.#checkOpen();
    checkMode(mode);
    const connection = await this.#begin(true);
    try {
      await connection.begin();
    } catch (error) {
      connection.release();
      throw error;
    }
    return new ReplicaTransaction(connection, this.#intMode, (p, c) => this.#pragma(p, c));
  }

  async executeMultiple(sql: string): Promise<void> {
    this.#checkOpen();
    const connection = await this.#begin(true);
    try {
      await connection.executeMultiple(sql);
    } finally {
      connection.release();
    }
  }

  /** Checks the store and moves to its newest snapshot, as `refresh(1)`; what an embedded replica's sync does. */
  async sync(): Promise<Replicated> {
    this.#checkOpen();
    const before = this.#served?.manifest.sequence ?? 0;
    await this.refresh(1);
    const after = this.#served?.manifest.sequence ?? 0;
    return { frame_no: after, frames_synced: after - before };
  }

  reconnect(): void {
    if (this.#closed) {
      throw new LibsqlError("A closed replica cannot be reopened: call openReplica again", "CLIENT_CLOSED");
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort(new TesseraError("UNSUPPORTED", "The replica was closed"));
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const newest = this.#newest;
    this.#newest = undefined;
    this.#served = undefined;
    newest?.release();
    this.#engine.close();
  }

  // --- freshness ---

  /** Whether each transaction moves to the newest prepared snapshot. */
  get autoRefresh(): boolean {
    return this.#autoRefresh;
  }
  set autoRefresh(on: boolean) {
    this.#autoRefresh = Boolean(on);
  }

  /** The sequence number of the snapshot new transactions see. */
  get sequence(): number {
    return this.#served?.manifest.sequence ?? 0;
  }
  /** When the source file last changed before the served snapshot was taken, in ms since the epoch. */
  get snapshotCtime(): number {
    return this.#served?.manifest.sourceMtimeMs ?? 0;
  }
  /** When this process finished fetching the served snapshot, in ms since the epoch. */
  get snapshotUpdated(): number {
    return this.#served?.preparedMs ?? 0;
  }
  /** At most how far behind the store the served snapshot may be: the time since it was last known newest. */
  get lagMs(): number {
    return Math.max(0, Date.now() - this.#servedFreshAsOf);
  }

  /**
   * Moves to a newer snapshot. `0`: the newest already prepared, without waiting; `1`: first checks the
   * store, or waits for the check in flight; `2`: always runs a new check first. Resolves to the time the
   * snapshot now served was fetched (ms since the epoch); rejects when the check fails (the replica keeps
   * serving what it had).
   */
  async refresh(level: RefreshLevel = 1): Promise<number> {
    this.#checkOpen();
    if (level !== 0 && level !== 1 && level !== 2) {
      throw new RangeError(`Cannot refresh: level ${level} is not 0, 1 or 2`);
    }
    if (level > 0 && this.#origin.kind === "database") await this.#check(level === 2);
    this.#adopt();
    return this.snapshotUpdated;
  }

  /**
   * Moves to the newest prepared snapshot when it is newer than the served one, and starts a background
   * check unless one is in flight. True when the served snapshot changed.
   */
  asyncReload(): boolean {
    this.#checkOpen();
    const changed = this.#adopt();
    if (this.#origin.kind === "database" && !this.#checking) this.#check(false).catch(() => {});
    return changed;
  }

  /** The replica's state, for health checks and `tessera shell`'s `.status`. */
  status(): ReplicaStatus {
    return {
      engine: this.#engine.kind,
      database: this.#origin.kind === "database" ? this.#origin.name : this.#origin.loaded.key,
      follows: this.#origin.kind === "database",
      autoRefresh: this.#autoRefresh,
      pollIntervalMs: this.#pollIntervalMs,
      sequence: this.sequence,
      snapshotCtime: this.snapshotCtime,
      snapshotUpdated: this.snapshotUpdated,
      lagMs: this.lagMs,
      newestSequence: this.#newest?.manifest.sequence ?? 0,
      checks: this.#checks,
      notModified: this.#notModified,
      lastCheckMs: this.#lastCheckMs,
      lastSuccessMs: this.#lastSuccessMs,
      consecutiveFailures: this.#failures,
      lastError: this.#lastError,
      memory: this.#engine.memory(),
      closed: this.#closed,
    };
  }

  /** Calls `listener` on every event of `type`; returns a function that stops it. */
  on<K extends keyof ReplicaEvents>(type: K, listener: Listener<K>): () => void {
    const set = this.#listeners[type] as Set<Listener<K>>;
    set.add(listener);
    return () => set.delete(listener);
  }

  // --- internals ---

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }

  #emit<K extends keyof ReplicaEvents>(type: K, event: ReplicaEvents[K]): void {
    for (const listener of this.#listeners[type] as Set<Listener<K>>) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own: it must not break the replica.
      }
    }
  }

  /** Gets the snapshot a transaction should start on (never waiting on the network unless
   * `maxStalenessMs` says so), then borrows a connection. */
  async #begin(transaction: boolean): Promise<EngineConnection> {
    if (transaction) {
      const max = this.#maxStalenessMs;
      const last = this.#lastSuccessMs;
      if (
        max !== undefined && this.#origin.kind === "database" &&
        (last === undefined || Date.now() - last >= max)
      ) {
        try {
          await this.#check(false);
        } catch (error) {
          const age = last === undefined ? "never" : `${Date.now() - last} ms ago`;
          throw new TesseraError(
            "STALE",
            `Cannot start a transaction on replica "${this.status().database}": maxStalenessMs is ${max}, the ` +
              `last successful check was ${age}, and checking now failed: ${(error as Error).message}`,
            { cause: error },
          );
        }
        this.#adopt();
      } else if (this.#autoRefresh) {
        this.#adopt();
      }
      this.#checkOpen();
    }
    return await this.#engine.connect();
  }

  /** Serves the newest prepared snapshot. True when that changed the served one. */
  #adopt(): boolean {
    const newest = this.#newest;
    if (!newest || newest === this.#served) {
      if (newest) this.#servedFreshAsOf = this.#newestFreshAsOf;
      return false;
    }
    this.#engine.serve(newest);
    this.#served = newest;
    this.#servedFreshAsOf = this.#newestFreshAsOf;
    return true;
  }

  #schedule(): void {
    if (this.#closed || this.#pollIntervalMs === 0 || this.#origin.kind !== "database") return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#check(false).catch(() => {}).finally(() => this.#schedule());
    }, this.#pollIntervalMs);
    unrefTimer(this.#timer);
  }

  /** Runs a check, or joins the one in flight (`fresh`: then runs another after it). */
  async #check(fresh: boolean): Promise<boolean> {
    if (this.#checking) {
      const running = this.#checking;
      if (!fresh) return await running;
      await running.catch(() => {});
      const again = this.#checking as Promise<boolean> | undefined;
      if (again && again !== running) return await again;
    }
    const run = this.#runCheck().finally(() => {
      if (this.#checking === run) this.#checking = undefined;
    });
    this.#checking = run;
    return await run;
  }

  /** Reads the pointer (conditionally) and prepares the snapshot it names when that is newer. */
  async #runCheck(): Promise<boolean> {
    const origin = this.#origin;
    if (origin.kind !== "database") return false;
    const { store, name } = origin;
    const started = Date.now();
    this.#checks++;
    this.#lastCheckMs = started;
    const signal = this.#stop.signal;
    try {
      const key = pointerKey(name);
      // The pointer and the manifest are small: one that takes longer than this is a hung request, and the
      // next poll should try again rather than wait out the store's idle timeout.
      const small = AbortSignal.any([signal, AbortSignal.timeout(SMALL_READ_TIMEOUT_MS)]);
      const got = await store.get(key, { ifNoneMatch: this.#etag, signal: small });
      if (got.status === "not_modified") {
        this.#notModified++;
        this.#succeeded(started);
        return false;
      }
      if (got.status === "not_found") {
        throw new TesseraError(
          "NOT_FOUND",
          `No snapshot of database "${name}" in ${store.description}: ${key} is missing (run \`tessera sync\` ` +
            `first, or check the database's name)`,
        );
      }
      const pointer = await decodePointer(got.body, { what: `${key} in ${store.description}` });
      const sha = toHex(pointer.manifestSha256);
      const newest = this.#newest?.manifest.sequence ?? 0;
      if (pointer.sequence === newest && sha === this.#newestPointerSha) {
        this.#etag = got.etag;
        this.#succeeded(started);
        return false;
      }
      if (pointer.sequence <= newest) {
        throw new TesseraError(
          "CONFLICT",
          `Not moving replica "${name}" back: ${key} in ${store.description} names snapshot ${pointer.sequence}, ` +
            `but snapshot ${newest} was already served; still serving ${newest}`,
        );
      }
      const loaded = await loadPointed(store, name, pointer, { signal: small });
      const snapshot = await this.#engine.prepare(loaded.manifest, signal);
      if (this.#closed) {
        snapshot.release();
        return false;
      }
      const previous = this.#newest;
      this.#newest = snapshot;
      previous?.release();
      this.#etag = got.etag;
      this.#newestPointerSha = sha;
      this.#succeeded(started);
      this.#emit("snapshot", {
        sequence: snapshot.manifest.sequence,
        chunksFetched: snapshot.chunksFetched,
        preparedMs: snapshot.preparedMs,
      });
      return true;
    } catch (thrown) {
      if (this.#closed || signal.aborted) throw thrown;
      const error = thrown instanceof DOMException && thrown.name === "TimeoutError"
        ? new TesseraError(
          "HTTP_REQUEST_FAILED",
          `Cannot check replica "${name}": ${store.description} did not answer within ${SMALL_READ_TIMEOUT_MS} ms`,
          { cause: thrown },
        )
        : thrown;
      const at = Date.now();
      this.#failures++;
      const code = error instanceof TesseraError ? error.code : (error as { code?: string })?.code ?? "ERROR";
      this.#lastError = { code: String(code), message: (error as Error)?.message ?? String(error), atMs: at };
      this.#emit("error", { error: error instanceof Error ? error : new Error(String(error)), atMs: at });
      throw error;
    }
  }

  #succeeded(started: number): void {
    this.#lastSuccessMs = Date.now();
    this.#failures = 0;
    this.#newestFreshAsOf = started;
    if (this.#served === this.#newest) this.#servedFreshAsOf = started;
  }

  /** Answers a `PRAGMA tessera_snapshot_*` with a one-row result, shaped by SQLite like any other. */
  async #pragma(pragma: TesseraPragma, connection: EngineConnection): Promise<ResultSet> {
    let value: number | string;
    const numeric = (fallback: number): number => {
      if (pragma.argument === undefined) return fallback;
      const n = Number(pragma.argument);
      if (!Number.isInteger(n)) {
        throw new LibsqlError(
          `SQLITE_ERROR: PRAGMA ${pragma.column} takes a whole number, not ${
            JSON.stringify(pragma.argument)
          }`,
          "SQLITE_ERROR",
          "SQLITE_ERROR",
          1,
        );
      }
      return n;
    };
    switch (pragma.name) {
      case "ctime":
        value = this.snapshotCtime / 1000;
        break;
      case "updated":
        value = this.snapshotUpdated / 1000;
        break;
      case "sequence":
        value = this.sequence;
        break;
      case "lag":
        value = this.lagMs;
        break;
      case "refresh": {
        const level = numeric(1);
        if (level !== 0 && level !== 1 && level !== 2) {
          throw new LibsqlError(
            `SQLITE_ERROR: PRAGMA ${pragma.column} takes 0, 1 or 2, not ${level}`,
            "SQLITE_ERROR",
            "SQLITE_ERROR",
            1,
          );
        }
        try {
          value = (await this.refresh(level)) / 1000;
        } catch (error) {
          value = `error: ${(error as Error)?.message ?? String(error)}`;
        }
        break;
      }
      case "async_reload":
        value = this.asyncReload() ? 1 : 0;
        break;
      case "auto_refresh":
        if (pragma.argument !== undefined) this.autoRefresh = numeric(0) !== 0;
        value = this.#autoRefresh ? 1 : 0;
        break;
      default:
        throw new LibsqlError(
          `SQLITE_ERROR: unknown pragma ${pragma.column}; a replica knows ` +
            TESSERA_PRAGMAS.map((n) => `tessera_snapshot_${n}`).join(", "),
          "SQLITE_ERROR",
          "SQLITE_ERROR",
          1,
        );
    }
    return await connection.execute({ sql: `SELECT ? AS "${pragma.column}"`, args: [value] }, this.#intMode);
  }
}

type PragmaRunner = (pragma: TesseraPragma, connection: EngineConnection) => Promise<ResultSet>;

async function runBatch(
  connection: EngineConnection,
  stmts: InStatement[],
  intMode: IntMode,
  pragma: PragmaRunner,
): Promise<ResultSet[]> {
  const results: ResultSet[] = [];
  for (let i = 0; i < stmts.length; i++) {
    try {
      if (!connection.inTransaction) {
        throw new LibsqlBatchError("The transaction has been rolled back", i, "TRANSACTION_CLOSED");
      }
      const stmt = stmts[i]!;
      const parsed = parseTesseraPragma(sqlOf(stmt));
      results.push(parsed ? await pragma(parsed, connection) : await connection.execute(stmt, intMode));
    } catch (error) {
      throw asBatchError(error, i);
    }
  }
  return results;
}

/** A read transaction on one connection and one snapshot. */
class ReplicaTransaction implements Transaction {
  #connection: EngineConnection | undefined;
  readonly #intMode: IntMode;
  readonly #pragma: PragmaRunner;

  constructor(connection: EngineConnection, intMode: IntMode, pragma: PragmaRunner) {
    this.#connection = connection;
    this.#intMode = intMode;
    this.#pragma = pragma;
  }

  get closed(): boolean {
    return this.#connection === undefined || !this.#connection.inTransaction;
  }

  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  async execute(stmtOrSql: InStatement, args?: InArgs): Promise<ResultSet> {
    const connection = this.#open();
    const stmt: InStatement = typeof stmtOrSql === "string"
      ? { sql: stmtOrSql, args: args ?? [] }
      : stmtOrSql;
    const pragma = parseTesseraPragma(sqlOf(stmt));
    return pragma ? await this.#pragma(pragma, connection) : await connection.execute(stmt, this.#intMode);
  }

  async batch(stmts: Array<InStatement | [string, InArgs?]>): Promise<ResultSet[]> {
    const connection = this.#open();
    return await runBatch(connection, stmts.map(normalize), this.#intMode, this.#pragma);
  }

  async executeMultiple(sql: string): Promise<void> {
    await this.#open().executeMultiple(sql);
  }

  async rollback(): Promise<void> {
    const connection = this.#connection;
    if (!connection) return;
    try {
      if (connection.inTransaction) await connection.rollback();
    } finally {
      this.#settle();
    }
  }

  async commit(): Promise<void> {
    try {
      await this.#open().commit();
    } finally {
      this.#settle();
    }
  }

  close(): void {
    this.#settle();
  }

  #open(): EngineConnection {
    if (this.closed) throw new LibsqlError("The transaction is closed", "TRANSACTION_CLOSED");
    return this.#connection!;
  }

  #settle(): void {
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.release();
  }
}
