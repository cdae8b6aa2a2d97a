/**
 * A Hrana stream over a replica: what one SQLite connection would be for a libSQL client. Statements
 * outside a transaction each run on the newest snapshot; `BEGIN` (`DEFERRED`, or libSQL's
 * `BEGIN TRANSACTION READONLY`) opens a read transaction that keeps one snapshot until `COMMIT`, `END` or
 * `ROLLBACK`, across requests for as long as the client holds the stream's baton. Only these transaction
 * words are read from the SQL text, to know which connection runs a statement; what a statement may do is
 * decided by SQLite's authorizer in the replica (`BEGIN IMMEDIATE` and every write fail there with
 * `SQLITE_READONLY`).
 *
 * @module
 */

import { type InStatement, type InValue, LibsqlError, type ResultSet } from "@libsql/core/api";
import { utf8Length } from "../bytes.ts";
import type { Replica } from "../replica/replica.ts";
import { splitStatements } from "../replica/statements.ts";
import type { ReplicaTransaction } from "../replica/transaction.ts";
import { older, type Served, servedNow } from "./bookmarks.ts";
import { ServerError } from "./errors.ts";
import { checkRows, checkSqlLength, resultTooLarge, type ServerLimits } from "./limits.ts";
import {
  type BatchCond,
  encodeResult,
  protoError,
  type ProtoStmt,
  type StreamRequest,
} from "./hrana_proto.ts";

/** What one stream may do. */
export type StreamLimits = Pick<ServerLimits, "maxSqlLength" | "maxRows" | "maxResultBytes" | "maxStoredSql">;

type Control =
  | { kind: "begin" }
  | { kind: "commit" | "rollback" }
  | { kind: "savepoint" | "release" | "rollback_to"; name: string }
  | undefined;

const NAME = String.raw`(?:"(?:[^"]|"")+"|\[[^\]]+\]|` + "`(?:[^`]|``)+`" +
  String.raw`|'(?:[^']|'')+'|[A-Za-z_][A-Za-z0-9_$]*)`;
const END = String.raw`\s*(?:;[\s\S]*)?$`;
const TRANS_OPT = String.raw`(?:\s+TRANSACTION(?:\s+${NAME})?)?`;
const BEGIN = new RegExp(String.raw`^BEGIN(?:\s+(?:DEFERRED|READONLY))?${TRANS_OPT}` + END, "i");
const COMMIT = new RegExp(String.raw`^(?:COMMIT|END)${TRANS_OPT}` + END, "i");
const ROLLBACK = new RegExp(String.raw`^ROLLBACK${TRANS_OPT}` + END, "i");
const SAVEPOINT = new RegExp(String.raw`^SAVEPOINT\s+(${NAME})` + END, "i");
const RELEASE = new RegExp(String.raw`^RELEASE(?:\s+SAVEPOINT)?\s+(${NAME})` + END, "i");
const ROLLBACK_TO = new RegExp(
  String.raw`^ROLLBACK(?:\s+TRANSACTION)?\s+TO(?:\s+SAVEPOINT)?\s+(${NAME})` + END,
  "i",
);
// A quoted text or name (kept), or a comment (read as the space SQLite reads it as). Each alternative
// matches in one pass, so stripping comments takes time in proportion to the text.
const QUOTED_OR_COMMENT =
  /('(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])|--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/g;

/** `sql` with its comments read as spaces, trimmed. */
export function withoutComments(sql: string): string {
  return sql.replace(QUOTED_OR_COMMENT, (_match, quoted) => quoted ?? " ").trim();
}

/** A savepoint name as SQLite compares it: unquoted, ASCII letters folded. */
function savepointName(written: string): string {
  const quote = written[0];
  let name = written;
  if (quote === '"' || quote === "'" || quote === "`") {
    name = written.slice(1, -1).replaceAll(quote + quote, quote);
  } else if (quote === "[") name = written.slice(1, -1);
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * The transaction statement `sql` is, past whitespace and comments, when it is one the stream must follow:
 * `BEGIN` (plain, `DEFERRED`, or libSQL's `READONLY`: `IMMEDIATE` and `EXCLUSIVE` go to the replica, which
 * refuses them), `COMMIT`/`END`, `ROLLBACK`, and `SAVEPOINT`, `RELEASE` and `ROLLBACK TO` with their
 * names. Only well-formed statements are recognized; anything else goes to SQLite, which reports its own
 * error for a malformed one.
 */
export function transactionControl(sql: string): Control {
  return controlOf(withoutComments(sql));
}

/** {@linkcode transactionControl} of text whose comments are gone already. */
function controlOf(text: string): Control {
  if (BEGIN.test(text)) return { kind: "begin" };
  if (COMMIT.test(text)) return { kind: "commit" };
  if (ROLLBACK.test(text)) return { kind: "rollback" };
  let match = SAVEPOINT.exec(text);
  if (match) return { kind: "savepoint", name: savepointName(match[1]!) };
  match = RELEASE.exec(text);
  if (match) return { kind: "release", name: savepointName(match[1]!) };
  match = ROLLBACK_TO.exec(text);
  if (match) return { kind: "rollback_to", name: savepointName(match[1]!) };
  return undefined;
}

/** The characters of SQL text one stream may keep stored in all. */
function storedSqlBudget(limits: StreamLimits): number {
  return Math.max(limits.maxSqlLength, 1024 * 1024);
}

/** Refuses a batch step's condition on a step that has not run before it (as sqld does). */
function checkCondSteps(cond: BatchCond, index: number): void {
  switch (cond.type) {
    case "ok":
    case "error":
      if (cond.step >= index) {
        throw new ServerError(
          400,
          "BATCH_COND_BAD_STEP",
          `Step ${index} of the batch has a condition on step ${cond.step}, which does not run before it`,
        );
      }
      return;
    case "not":
      return checkCondSteps(cond.cond, index);
    case "and":
    case "or":
      for (const c of cond.conds) checkCondSteps(c, index);
      return;
    default:
      return;
  }
}

/**
 * What a statement's arguments failed with, as `ARGS_INVALID`: the engines throw `TypeError` and
 * `RangeError` for arguments they cannot bind (named arguments for a `?` parameter, say).
 */
export function argsError(error: unknown): never {
  if (error instanceof TypeError || error instanceof RangeError) {
    throw new ServerError(400, "ARGS_INVALID", error.message);
  }
  throw error;
}

function sqliteError(message: string): LibsqlError {
  return new LibsqlError(message, "SQLITE_ERROR", "SQLITE_ERROR", 1);
}

const TRIGGER = /\bCREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TRIGGER\b/i;

const FOREIGN_KEYS = /^PRAGMA\s+foreign_keys\s*=\s*(?:on|off|0|1|true|false|yes|no)(?:\s*;)?$/i;

const NOTHING: ResultSet = {
  columns: [],
  columnTypes: [],
  rows: [],
  rowsAffected: 0,
  // What a file connection reports for a statement that inserted nothing.
  lastInsertRowid: 0n,
  toJSON: () => ({}),
};

/** One client's stream: stored SQL texts and, between `BEGIN` and its end, a read transaction. */
export class HranaStream {
  readonly #replica: Replica;
  readonly #limits: StreamLimits;
  readonly #sqls = new Map<number, string>();
  #storedBytes = 0;
  #transaction: ReplicaTransaction | undefined;
  /** The snapshot the transaction reads (never newer than it), while one is open. */
  #pinned: Served | undefined;
  /** Savepoints open, when a `SAVEPOINT` began the transaction: releasing the first ends it. */
  #savepoints: string[] | undefined;
  /** The oldest snapshot the current pipeline read. */
  #served: Served = { sequence: 0, ctime: 0 };
  #budget = 0;

  constructor(replica: Replica, limits: StreamLimits) {
    this.#replica = replica;
    this.#limits = limits;
  }

  /** True outside a transaction. */
  get autocommit(): boolean {
    if (this.#transaction !== undefined && this.#transaction.closed) this.#ended();
    return this.#transaction === undefined;
  }

  /** The snapshot the stream's open transaction reads, if one is open. */
  get pinned(): Served | undefined {
    return this.autocommit ? undefined : this.#pinned;
  }

  /** The oldest snapshot the pipeline since {@linkcode HranaStream.startPipeline} read from. */
  get served(): Served {
    return this.#served;
  }

  /**
   * Starts a pipeline: resets the result budget; `served` is the replica's snapshot as the request
   * arrived, before any of its statements ran.
   */
  startPipeline(served: Served): void {
    this.#budget = this.#limits.maxResultBytes;
    const pinned = this.pinned;
    this.#served = pinned ? older(served, pinned) : served;
  }

  /**
   * The JSON of `error` as a result's error, counted against the pipeline's result budget like rows are
   * (an error may echo SQL text): once the budget is spent, the short `RESULT_TOO_LARGE` error instead.
   */
  errorJson(error: unknown): string {
    const text = JSON.stringify(protoError(error));
    this.#budget -= utf8Length(text);
    return this.#budget < 0 ? JSON.stringify(protoError(resultTooLarge(this.#limits))) : text;
  }

  /** Runs one request (not `close`, which the pipeline handles) and returns its response as JSON text. */
  async handle(request: Exclude<StreamRequest, { type: "close" }>): Promise<string> {
    switch (request.type) {
      case "execute": {
        const result = await this.#execute(request.stmt);
        return `{"type":"execute","result":${this.#encode(result, request.stmt.wantRows)}}`;
      }
      case "batch":
        return `{"type":"batch","result":${await this.#batch(request.steps)}}`;
      case "sequence": {
        // Statement by statement, as `execute` runs them: each under the time limit on the worker when it
        // runs long (the server's thread stays free), and BEGIN or COMMIT among them moving the stream's
        // transaction as they would a connection's. The first error stops the sequence.
        const script = this.#text(request);
        if (TRIGGER.test(withoutComments(script))) {
          // A trigger's body holds `;`s the cut would split at. The replica refuses CREATE TRIGGER anyway;
          // the script runs whole so that it fails as it does on a file, with SQLITE_READONLY.
          if (this.autocommit) await this.#replica.executeMultiple(script);
          else await this.#transaction!.executeMultiple(script);
          return `{"type":"sequence"}`;
        }
        const { statements, rest } = splitStatements(script);
        if (rest !== "") statements.push(rest);
        for (const sql of statements) {
          await this.#execute({ sql, args: [], namedArgs: [], wantRows: false });
        }
        return `{"type":"sequence"}`;
      }
      case "describe": {
        const sql = this.#text(request);
        const d = this.autocommit
          ? await this.#replica.describe(sql)
          : await this.#transaction!.describe(sql);
        return `{"type":"describe","result":${
          JSON.stringify({
            params: d.params,
            cols: d.cols,
            is_explain: d.isExplain,
            is_readonly: d.isReadonly,
          })
        }}`;
      }
      case "store_sql": {
        if (this.#sqls.has(request.sqlId)) {
          throw new ServerError(400, "HRANA_PROTO_ERROR", `SQL text ${request.sqlId} is stored already`);
        }
        if (this.#sqls.size >= this.#limits.maxStoredSql) {
          throw new ServerError(
            400,
            "HRANA_PROTO_ERROR",
            `A stream stores at most ${this.#limits.maxStoredSql} SQL texts: close some with close_sql`,
          );
        }
        this.#checkLength(request.sql);
        // The texts together are bounded too: as many as allowed, each as long as allowed, would be a lot.
        const budget = storedSqlBudget(this.#limits);
        if (this.#storedBytes + request.sql.length > budget) {
          throw new ServerError(
            400,
            "SQL_TOO_LONG",
            `A stream stores at most ${budget} characters of SQL text in all: close some with close_sql`,
          );
        }
        this.#sqls.set(request.sqlId, request.sql);
        this.#storedBytes += request.sql.length;
        return `{"type":"store_sql"}`;
      }
      case "close_sql": {
        const sql = this.#sqls.get(request.sqlId);
        if (sql !== undefined) this.#storedBytes -= sql.length;
        this.#sqls.delete(request.sqlId);
        return `{"type":"close_sql"}`;
      }
      case "get_autocommit":
        return `{"type":"get_autocommit","is_autocommit":${this.autocommit}}`;
    }
  }

  /** Ends the stream: a transaction still open is rolled back. */
  close(): void {
    const transaction = this.#transaction;
    this.#ended();
    transaction?.close();
    this.#sqls.clear();
    this.#storedBytes = 0;
  }

  #checkLength(sql: string): void {
    checkSqlLength(sql, this.#limits);
  }

  #text(from: { sql?: string; sqlId?: number }): string {
    if (from.sql !== undefined) {
      this.#checkLength(from.sql);
      return from.sql;
    }
    const sql = this.#sqls.get(from.sqlId!);
    if (sql === undefined) {
      throw new ServerError(
        400,
        "HRANA_PROTO_ERROR",
        `No SQL text is stored as ${from.sqlId} on this stream`,
      );
    }
    return sql;
  }

  /** Forgets the transaction (SQLite ended it, or the stream did). */
  #ended(): void {
    this.#transaction = undefined;
    this.#pinned = undefined;
    this.#savepoints = undefined;
  }

  /** Opens the stream's read transaction on the snapshot served now. */
  async #begin(): Promise<ReplicaTransaction> {
    const pinned = servedNow(this.#replica);
    const transaction = await this.#replica.transaction("read");
    this.#transaction = transaction;
    this.#pinned = pinned;
    this.#served = older(this.#served, pinned);
    return transaction;
  }

  async #execute(stmt: ProtoStmt): Promise<ResultSet> {
    const sql = this.#text(stmt);
    if (stmt.args.length > 0 && stmt.namedArgs.length > 0) {
      throw new ServerError(
        400,
        "HRANA_PROTO_ERROR",
        "A statement takes positional or named arguments, not both",
      );
    }
    const args: InValue[] | Record<string, InValue> = stmt.namedArgs.length > 0
      ? Object.fromEntries(stmt.namedArgs)
      : stmt.args;
    const statement: InStatement = { sql, args };
    // @libsql/client's migrate() wraps its batch in these; on a replica, which never writes, foreign key
    // enforcement has nothing to act on, so they are answered as done and the batch fails at its first write.
    const plain = withoutComments(sql);
    if (FOREIGN_KEYS.test(plain)) return NOTHING;
    const control = controlOf(plain);
    switch (control?.kind) {
      case "begin":
        if (!this.autocommit) throw sqliteError("cannot start a transaction within a transaction");
        await this.#begin();
        return NOTHING;
      case "commit":
      case "rollback": {
        const transaction = this.#transaction;
        const kind = control.kind;
        if (this.autocommit) throw sqliteError(`cannot ${kind} - no transaction is active`);
        this.#ended();
        if (kind === "commit") await transaction!.commit();
        else await transaction!.rollback();
        return NOTHING;
      }
      case "savepoint": {
        // Outside a transaction, SAVEPOINT begins one that releasing this savepoint ends.
        const opens = this.autocommit;
        const transaction = opens ? await this.#begin() : this.#transaction!;
        let result: ResultSet;
        try {
          result = await transaction.execute(statement).catch(argsError);
        } catch (error) {
          if (opens) {
            // The transaction it would have begun ends; the stream and its stored SQL stay.
            this.#ended();
            transaction.close();
          }
          throw error;
        }
        if (opens) this.#savepoints = [control.name];
        else this.#savepoints?.push(control.name);
        return result;
      }
    }
    if (this.autocommit) return await this.#replica.execute(statement).catch(argsError);
    const transaction = this.#transaction!;
    const result = await transaction.execute(statement).catch(argsError);
    const savepoints = this.#savepoints;
    if (savepoints && (control?.kind === "release" || control?.kind === "rollback_to")) {
      // SQLite found the savepoint (or the statement failed): those opened after it are gone, and
      // RELEASE removes it too.
      const at = savepoints.lastIndexOf(control.name);
      if (at >= 0) savepoints.length = control.kind === "release" ? at : at + 1;
      if (savepoints.length === 0) {
        // Releasing the savepoint that began the transaction commits it.
        this.#ended();
        if (!transaction.closed) await transaction.commit();
        else transaction.close();
      }
    }
    if (transaction.closed) this.#ended();
    return result;
  }

  #encode(result: ResultSet, wantRows: boolean): string {
    if (wantRows) checkRows(result.rows.length, this.#limits);
    const text = encodeResult(result, wantRows);
    this.#budget -= utf8Length(text);
    if (this.#budget < 0) throw resultTooLarge(this.#limits);
    return text;
  }

  async #batch(steps: { condition: BatchCond | undefined; stmt: ProtoStmt }[]): Promise<string> {
    steps.forEach((step, i) => {
      if (step.condition !== undefined) checkCondSteps(step.condition, i);
    });
    const results: string[] = [];
    const errors: string[] = [];
    const outcomes: (boolean | undefined)[] = [];
    for (const step of steps) {
      if (step.condition !== undefined && !this.#holds(step.condition, outcomes)) {
        results.push("null");
        errors.push("null");
        outcomes.push(undefined);
        continue;
      }
      try {
        const result = await this.#execute(step.stmt);
        results.push(this.#encode(result, step.stmt.wantRows));
        errors.push("null");
        outcomes.push(true);
      } catch (error) {
        results.push("null");
        errors.push(this.errorJson(error));
        outcomes.push(false);
      }
    }
    return `{"step_results":[${results.join(",")}],"step_errors":[${errors.join(",")}]}`;
  }

  #holds(cond: BatchCond, outcomes: readonly (boolean | undefined)[]): boolean {
    switch (cond.type) {
      case "ok":
        return outcomes[cond.step] === true;
      case "error":
        return outcomes[cond.step] === false;
      case "not":
        return !this.#holds(cond.cond, outcomes);
      case "and":
        return cond.conds.every((c) => this.#holds(c, outcomes));
      case "or":
        return cond.conds.some((c) => this.#holds(c, outcomes));
      case "is_autocommit":
        return this.autocommit;
    }
  }
}
