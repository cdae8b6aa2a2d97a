/**
 * The answers to `PRAGMA tessera_snapshot_*` (recognized by pragmas.ts): the replica's freshness figures and
 * calls, as a one-row result shaped by SQLite like any other.
 *
 * @module
 */

import { type IntMode, LibsqlError, type ResultSet } from "@libsql/core/api";
import type { EngineConnection } from "./engine.ts";
import type { RefreshLevel } from "./freshness.ts";
import { TESSERA_PRAGMAS, type TesseraPragma } from "./pragmas.ts";

/** What the pragmas read and call: a replica's public freshness figures and calls. */
export interface PragmaSubject {
  readonly snapshotCtime: number;
  readonly snapshotUpdated: number;
  readonly sequence: number;
  readonly lagMs: number;
  autoRefresh: boolean;
  refresh(level: RefreshLevel): Promise<number>;
  asyncReload(): boolean;
}

function pragmaError(message: string): LibsqlError {
  return new LibsqlError(message, "SQLITE_ERROR", "SQLITE_ERROR", 1);
}

/**
 * Answers `pragma` from `subject`, selecting the value on `connection` so that it comes back as SQLite would
 * return it. `PRAGMA tessera_snapshot_refresh` reports a failed refresh as a text value `error: …` rather
 * than failing the statement; an unknown `tessera_snapshot_*` pragma fails with `SQLITE_ERROR`.
 */
export async function answerPragma(
  pragma: TesseraPragma,
  subject: PragmaSubject,
  connection: EngineConnection,
  intMode: IntMode,
): Promise<ResultSet> {
  let value: number | string;
  const numeric = (fallback: number): number => {
    if (pragma.argument === undefined) return fallback;
    const n = Number(pragma.argument);
    if (!Number.isInteger(n)) {
      throw pragmaError(
        `PRAGMA ${pragma.column} takes a whole number, not ${JSON.stringify(pragma.argument)}`,
      );
    }
    return n;
  };
  switch (pragma.name) {
    case "ctime":
      value = subject.snapshotCtime / 1000;
      break;
    case "updated":
      value = subject.snapshotUpdated / 1000;
      break;
    case "sequence":
      value = subject.sequence;
      break;
    case "lag":
      value = subject.lagMs;
      break;
    case "refresh": {
      const level = numeric(1);
      if (level !== 0 && level !== 1 && level !== 2) {
        throw pragmaError(`PRAGMA ${pragma.column} takes 0, 1 or 2, not ${level}`);
      }
      try {
        value = (await subject.refresh(level)) / 1000;
      } catch (error) {
        value = `error: ${(error as Error)?.message ?? String(error)}`;
      }
      break;
    }
    case "async_reload":
      value = subject.asyncReload() ? 1 : 0;
      break;
    case "auto_refresh":
      if (pragma.argument !== undefined) subject.autoRefresh = numeric(0) !== 0;
      value = subject.autoRefresh ? 1 : 0;
      break;
    default:
      throw pragmaError(
        `unknown pragma ${pragma.column}; a replica knows ` +
          TESSERA_PRAGMAS.map((n) => `tessera_snapshot_${n}`).join(", "),
      );
  }
  // Whole numbers (sequence, lag, flags) come back as SQLite integers, as a pragma's would.
  const arg = typeof value === "number" && Number.isSafeInteger(value) ? BigInt(value) : value;
  return await connection.execute({ sql: `SELECT ? AS "${pragma.column}"`, args: [arg] }, intMode);
}
