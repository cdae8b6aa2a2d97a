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

import {
  type InStatement,
  type InValue,
  LibsqlError,
  type ResultSet,
  type Transaction,
} from "@libsql/core/api";
import type { Replica } from "../replica/replica.ts";
import { ServerError } from "./errors.ts";
import { checkRows, checkSqlLength, resultTooLarge, type ServerLimits } from "./limits.ts";
import {
  type BatchCond,
  encodeResult,
  type ProtoError,
  protoError,
  type ProtoStmt,
  type StreamRequest,
} from "./hrana_proto.ts";

/** What one stream may do. */
export type StreamLimits = Pick<ServerLimits, "maxSqlLength" | "maxRows" | "maxResultBytes" | "maxStoredSql">;

type Control = "begin" | "commit" | "rollback" | "savepoint" | undefined;

/**
 * The transaction word a statement starts with, past whitespace and comments: `BEGIN` (not `IMMEDIATE` or
 * `EXCLUSIVE`, which the replica refuses itself), `COMMIT`/`END`, `ROLLBACK` (not `ROLLBACK TO`, which
 * stays inside the transaction), `SAVEPOINT`.
 */
export function transactionControl(sql: string): Control {
  const words = sql.replace(/^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/, "").slice(0, 64).toUpperCase()
    .split(/[^A-Z_]+/).filter((w) => w !== "");
  switch (words[0]) {
    case "BEGIN":
      return words[1] === "IMMEDIATE" || words[1] === "EXCLUSIVE" ? undefined : "begin";
    case "COMMIT":
    case "END":
      return "commit";
    case "ROLLBACK": {
      const next = words[1] === "TRANSACTION" ? words[2] : words[1];
      return next === "TO" ? undefined : "rollback";
    }
    case "SAVEPOINT":
      return "savepoint";
    default:
      return undefined;
  }
}

function sqliteError(message: string): LibsqlError {
  return new LibsqlError(message, "SQLITE_ERROR", "SQLITE_ERROR", 1);
}

const FOREIGN_KEYS = /^\s*PRAGMA\s+foreign_keys\s*=\s*(?:on|off|0|1|true|false|yes|no)\s*;?\s*$/i;

const NOTHING: ResultSet = {
  columns: [],
  columnTypes: [],
  rows: [],
  rowsAffected: 0,
  lastInsertRowid: undefined,
  toJSON: () => ({}),
};

/** One client's stream: stored SQL texts and, between `BEGIN` and its end, a read transaction. */
export class HranaStream {
  readonly #replica: Replica;
  readonly #limits: StreamLimits;
  readonly #sqls = new Map<number, string>();
  #transaction: Transaction | undefined;
  #budget = 0;

  constructor(replica: Replica, limits: StreamLimits) {
    this.#replica = replica;
    this.#limits = limits;
  }

  /** True outside a transaction. */
  get autocommit(): boolean {
    return this.#transaction === undefined || this.#transaction.closed;
  }

  /** Resets the result budget at the start of a pipeline. */
  startPipeline(): void {
    this.#budget = this.#limits.maxResultBytes;
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
        const sql = this.#text(request);
        if (this.autocommit) await this.#replica.executeMultiple(sql);
        else await this.#transaction!.executeMultiple(sql);
        return `{"type":"sequence"}`;
      }
      case "describe": {
        const d = await this.#replica.describe(this.#text(request));
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
        this.#sqls.set(request.sqlId, request.sql);
        return `{"type":"store_sql"}`;
      }
      case "close_sql":
        this.#sqls.delete(request.sqlId);
        return `{"type":"close_sql"}`;
      case "get_autocommit":
        return `{"type":"get_autocommit","is_autocommit":${this.autocommit}}`;
    }
  }

  /** Ends the stream: a transaction still open is rolled back. */
  close(): void {
    const transaction = this.#transaction;
    this.#transaction = undefined;
    transaction?.close();
    this.#sqls.clear();
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
    if (FOREIGN_KEYS.test(sql)) return NOTHING;
    const control = transactionControl(sql);
    if (control === "begin") {
      if (!this.autocommit) throw sqliteError("cannot start a transaction within a transaction");
      this.#transaction = await this.#replica.transaction("read");
      return NOTHING;
    }
    if (control === "commit" || control === "rollback") {
      const transaction = this.#transaction;
      this.#transaction = undefined;
      if (transaction === undefined || transaction.closed) {
        throw sqliteError(`cannot ${control} - no transaction is active`);
      }
      if (control === "commit") await transaction.commit();
      else await transaction.rollback();
      return NOTHING;
    }
    if (control === "savepoint" && this.autocommit) {
      this.#transaction = await this.#replica.transaction("read");
    }
    if (!this.autocommit) {
      const result = await this.#transaction!.execute(statement);
      if (this.#transaction?.closed) this.#transaction = undefined;
      return result;
    }
    return await this.#replica.execute(statement);
  }

  #encode(result: ResultSet, wantRows: boolean): string {
    if (wantRows) checkRows(result.rows.length, this.#limits);
    const text = encodeResult(result, wantRows);
    this.#budget -= text.length;
    if (this.#budget < 0) throw resultTooLarge(this.#limits);
    return text;
  }

  async #batch(steps: { condition: BatchCond | undefined; stmt: ProtoStmt }[]): Promise<string> {
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
        const e: ProtoError = protoError(error);
        results.push("null");
        errors.push(JSON.stringify(e));
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
