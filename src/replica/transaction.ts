/**
 * A replica's read transactions and batches: statements run in order on one borrowed connection, so on one
 * snapshot, with `PRAGMA tessera_snapshot_*` answered by the replica rather than SQLite.
 *
 * @module
 */

import {
  type InArgs,
  type InStatement,
  type IntMode,
  LibsqlBatchError,
  LibsqlError,
  type ResultSet,
  type Transaction,
} from "@libsql/core/api";
import type { StatementDescription } from "./describe.ts";
import type { EngineConnection } from "./engine.ts";
import { parseTesseraPragma, type TesseraPragma } from "./pragmas.ts";

/** Answers a Tessera pragma on `connection` (see pragma_answers.ts). */
export type PragmaRunner = (pragma: TesseraPragma, connection: EngineConnection) => Promise<ResultSet>;

/** A statement as `batch` takes it, in the one shape `execute` takes. */
export function normalize(stmt: InStatement | [string, InArgs?]): InStatement {
  if (Array.isArray(stmt)) return { sql: stmt[0], args: stmt[1] ?? [] };
  return stmt;
}

/** The SQL text of a statement. */
export function sqlOf(stmt: InStatement): string {
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

/**
 * Runs `stmts` in order inside the transaction open on `connection`; the first failure stops it, as a
 * `LibsqlBatchError` naming the statement's index (`TRANSACTION_CLOSED` when SQLite rolled back).
 */
export async function runBatch(
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

/** A read transaction on one connection and one snapshot; the connection goes back when it settles. */
export class ReplicaTransaction implements Transaction {
  #connection: EngineConnection | undefined;
  readonly #intMode: IntMode;
  readonly #pragma: PragmaRunner;

  /** Takes over `connection`, on which a transaction has begun. */
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

  /** Describes the first statement of `sql` on the transaction's snapshot (see `Replica.describe`). */
  async describe(sql: string): Promise<StatementDescription> {
    return await this.#open().describe(sql);
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
