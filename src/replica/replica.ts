/**
 * A read replica: @libsql/client's `Client` interface over snapshots of a database in a store, kept fresh
 * by a background poller (freshness.ts) and switched between transactions, never inside one.
 *
 * @module
 */

import {
  type Client,
  type InArgs,
  type InStatement,
  type IntMode,
  LibsqlError,
  type Replicated,
  type ResultSet,
  type TransactionMode,
} from "@libsql/core/api";
import type { StatementDescription } from "./describe.ts";
import type { EngineConnection, EngineMemory, ReplicaEngine, ResultLimits } from "./engine.ts";
import type { ReplicaEvents, ReplicaListener } from "./events.ts";
import {
  Freshness,
  type FreshnessSettings,
  type FreshnessStatus,
  type RefreshLevel,
  type ReplicaOrigin,
} from "./freshness.ts";
import type { FirstSnapshot } from "./pointer_check.ts";
import { answerPragma, type PragmaSubject } from "./pragma_answers.ts";
import { parseTesseraPragma, type TesseraPragma } from "./pragmas.ts";
import { normalize, type PragmaRunner, ReplicaTransaction, runBatch, sqlOf } from "./transaction.ts";

export type { FirstSnapshot, RefreshLevel, ReplicaEvents, ReplicaOrigin, StatementDescription };

/** Freshness settings of a replica. */
export interface FreshnessOptions extends FreshnessSettings {
  /** How integers come back, as @libsql/client's `intMode`. @default {"number"} */
  intMode?: IntMode | undefined;
}

/** What a replica reports about itself. */
export interface ReplicaStatus extends FreshnessStatus {
  engine: "wasm" | "native";
  memory: EngineMemory;
  closed: boolean;
}

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

/** Refuses, on a restricted replica, a Tessera pragma that changes what every caller is served. */
function refuseControl(pragma: TesseraPragma): void {
  const changes = pragma.name === "refresh" || pragma.name === "async_reload" ||
    (pragma.name === "auto_refresh" && pragma.argument !== undefined);
  if (!changes) return;
  throw new LibsqlError(
    `not authorized: PRAGMA ${pragma.column} changes the replica for every caller, and this ` +
      "replica serves callers it does not trust; its owner refreshes it (the server: POST /v1/db/NAME/refresh)",
    "SQLITE_AUTH",
    "SQLITE_AUTH",
    23,
  );
}

function checkMode(mode: TransactionMode): void {
  if (mode === "write") throw readonlyError();
  if (mode !== "read" && mode !== "deferred") {
    throw RangeError('Unknown transaction mode, supported values are "write", "read" and "deferred"');
  }
}

/**
 * A read-only `Client` over a replicated database. Create one with `openReplica` (src/replica/open.ts).
 */
export class Replica implements Client {
  readonly protocol = "file";
  readonly #engine: ReplicaEngine;
  readonly #freshness: Freshness;
  readonly #intMode: IntMode;
  #closed = false;
  #restricted = false;
  readonly #pragma = async (pragma: TesseraPragma, connection: EngineConnection): Promise<ResultSet> => {
    if (this.#restricted) refuseControl(pragma);
    return await answerPragma(pragma, this, connection, this.#intMode);
  };

  /**
   * The pragma runner of a transaction that began on the snapshot served now: its freshness pragmas name
   * that snapshot for as long as the transaction reads it, whatever the replica serves meanwhile.
   */
  #pinnedPragma(): PragmaRunner {
    const sequence = this.sequence;
    const snapshotCtime = this.snapshotCtime;
    const snapshotUpdated = this.snapshotUpdated;
    const lagMs = () =>
      // Once the replica moved on, the snapshot was last known newest no earlier than when it was fetched.
      this.sequence === sequence ? this.lagMs : Math.max(0, Date.now() - snapshotUpdated);
    const autoRefresh = () => this.autoRefresh;
    const setAutoRefresh = (on: boolean) => (this.autoRefresh = on);
    const subject: PragmaSubject = {
      sequence,
      snapshotCtime,
      snapshotUpdated,
      get lagMs() {
        return lagMs();
      },
      get autoRefresh() {
        return autoRefresh();
      },
      set autoRefresh(on: boolean) {
        setAutoRefresh(on);
      },
      refresh: (level) => this.refresh(level),
      asyncReload: () => this.asyncReload(),
    };
    return async (pragma, connection) => {
      if (this.#restricted) refuseControl(pragma);
      return await answerPragma(pragma, subject, connection, this.#intMode);
    };
  }

  private constructor(engine: ReplicaEngine, origin: ReplicaOrigin, options: FreshnessOptions) {
    this.#engine = engine;
    this.#intMode = options.intMode ?? "number";
    if (!["number", "bigint", "string"].includes(this.#intMode)) {
      throw new RangeError(
        `Cannot open a replica: intMode ${JSON.stringify(this.#intMode)} is not number, bigint or string`,
      );
    }
    this.#freshness = new Freshness(engine, origin, options);
  }

  /**
   * Opens a replica: fetches and prepares the first snapshot (the call fails when it cannot), then polls.
   * The engine is closed when opening fails.
   */
  static async open(
    engine: ReplicaEngine,
    origin: ReplicaOrigin,
    options: FreshnessOptions & {
      signal?: AbortSignal | undefined;
      /** For a database: its pointer and manifest, read already (they are not read again). */
      first?: FirstSnapshot | undefined;
    } = {},
  ): Promise<Replica> {
    let replica: Replica;
    try {
      replica = new Replica(engine, origin, options);
    } catch (error) {
      engine.close();
      throw error;
    }
    try {
      await replica.#freshness.start({ signal: options.signal, first: options.first });
    } catch (error) {
      replica.close();
      throw error;
    }
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
    const pragma = this.#pinnedPragma();
    try {
      await connection.begin();
      const results = await runBatch(connection, stmts.map(normalize), this.#intMode, pragma);
      await connection.commit();
      return results;
    } finally {
      connection.release();
    }
  }

  async migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    return await this.batch(stmts, "deferred");
  }

  async transaction(mode: TransactionMode = "read"): Promise<ReplicaTransaction> {
    this.#checkOpen();
    checkMode(mode);
    const connection = await this.#begin(true);
    const pragma = this.#pinnedPragma();
    try {
      await connection.begin();
    } catch (error) {
      connection.release();
      throw error;
    }
    return new ReplicaTransaction(connection, this.#intMode, pragma);
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

  /**
   * Compiles the first statement of `sql` without running it and says what it takes and returns: its
   * parameters, columns and whether it is read-only (Hrana's `describe`). A statement the replica refuses
   * fails here as it would in `execute`.
   */
  async describe(sql: string): Promise<StatementDescription> {
    this.#checkOpen();
    const connection = await this.#begin(false);
    try {
      return await connection.describe(sql);
    } finally {
      connection.release();
    }
  }

  /** Checks the store and moves to its newest snapshot, as `refresh(1)`; what an embedded replica's sync does. */
  async sync(): Promise<Replicated> {
    this.#checkOpen();
    const before = this.sequence;
    await this.refresh(1);
    const after = this.sequence;
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
    this.#freshness.close();
    this.#engine.close();
  }

  /**
   * Makes the replica fit to run SQL from callers it does not trust, such as the server's: from now on,
   * for good, the `PRAGMA tessera_snapshot_*` statements that change its state for every caller
   * (`refresh`, `async_reload`, `auto_refresh` with a value) fail with `SQLITE_AUTH`, and every
   * statement's result is bounded by `limits` while SQLite steps through it, failing with
   * `RESULT_TOO_LARGE` (wasm engine; the native engine checks the whole result after the statement). In
   * the wasm engine `maxBytes` is also SQLite's longest value (`SQLITE_LIMIT_LENGTH`), so a statement that
   * would build a longer one anywhere (an argument, `zeroblob`, `group_concat`, a value it reads whole)
   * fails too, before the memory is taken. The replica's own methods (`refresh`, `autoRefresh`) still work
   * for the program that opened it.
   */
  restrict(limits: Partial<ResultLimits> = {}): void {
    this.#checkOpen();
    this.#restricted = true;
    this.#engine.limitResults({ maxRows: limits.maxRows ?? 0, maxBytes: limits.maxBytes ?? 0 });
  }

  /** True once {@linkcode Replica.restrict} was called. */
  get restricted(): boolean {
    return this.#restricted;
  }

  // --- freshness ---

  /** Whether each transaction moves to the newest prepared snapshot. */
  /** How integers come back (the `intMode` it was opened with). */
  get intMode(): IntMode {
    return this.#intMode;
  }

  get autoRefresh(): boolean {
    return this.#freshness.autoRefresh;
  }
  set autoRefresh(on: boolean) {
    this.#freshness.autoRefresh = on;
  }

  /** The sequence number of the snapshot new transactions see. */
  get sequence(): number {
    return this.#freshness.sequence;
  }
  /** When the source file last changed before the served snapshot was taken, in ms since the epoch. */
  get snapshotCtime(): number {
    return this.#freshness.snapshotCtime;
  }
  /** When this process finished fetching the served snapshot, in ms since the epoch. */
  get snapshotUpdated(): number {
    return this.#freshness.snapshotUpdated;
  }
  /** At most how far behind the store the served snapshot may be: the time since it was last known newest. */
  get lagMs(): number {
    return this.#freshness.lagMs;
  }

  /**
   * Moves to a newer snapshot. `0`: the newest already prepared, without waiting; `1`: first checks the
   * store, or waits for the check in flight; `2`: always runs a new check first. Resolves to the time the
   * snapshot now served was fetched (ms since the epoch); rejects when the check fails (the replica keeps
   * serving what it had).
   */
  async refresh(level: RefreshLevel = 1): Promise<number> {
    this.#checkOpen();
    return await this.#freshness.refresh(level);
  }

  /**
   * Moves to the newest prepared snapshot when it is newer than the served one, and starts a background
   * check unless one is in flight. True when the served snapshot changed.
   */
  asyncReload(): boolean {
    this.#checkOpen();
    return this.#freshness.asyncReload();
  }

  /** The replica's state, for health checks and `tessera shell`'s `.status`. */
  status(): ReplicaStatus {
    return {
      engine: this.#engine.kind,
      ...this.#freshness.status(),
      memory: this.#engine.memory(),
      closed: this.#closed,
    };
  }

  /** Calls `listener` on every event of `type`; returns a function that stops it. */
  on<K extends keyof ReplicaEvents>(type: K, listener: ReplicaListener<K>): () => void {
    return this.#freshness.on(type, listener);
  }

  // --- internals ---

  #checkOpen(): void {
    if (this.#closed) throw closedError();
  }

  /** Moves to the snapshot a transaction should start on (never waiting on the network unless
   * `maxStalenessMs` says so), then borrows a connection. */
  async #begin(transaction: boolean): Promise<EngineConnection> {
    if (transaction) {
      const waiting = this.#freshness.beforeTransaction();
      if (waiting) await waiting;
      this.#checkOpen();
    }
    return await this.#engine.connect();
  }
}
