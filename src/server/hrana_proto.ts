/**
 * Hrana 2 over HTTP, the JSON @libsql/client sends to `POST /v2/pipeline`: the requests of a pipeline read
 * and checked, and the values, results and errors written back. Checking is strict: a request the protocol
 * does not define is answered with `HRANA_PROTO_ERROR` before any of the pipeline runs.
 *
 * @module
 */

import type { InValue, ResultSet } from "@libsql/core/api";
import { fromBase64, toBase64 } from "../bytes.ts";
import { ServerError } from "./errors.ts";

/** A value as Hrana carries it. */
export type ProtoValue =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };

/** A statement: its SQL (or a stored SQL's id) and arguments. */
export interface ProtoStmt {
  sql?: string;
  sqlId?: number;
  args: InValue[];
  namedArgs: [string, InValue][];
  wantRows: boolean;
}

/** A condition on earlier steps of a batch. */
export type BatchCond =
  | { type: "ok" | "error"; step: number }
  | { type: "not"; cond: BatchCond }
  | { type: "and" | "or"; conds: BatchCond[] }
  | { type: "is_autocommit" };

/** A request of a pipeline. */
export type StreamRequest =
  | { type: "close" }
  | { type: "execute"; stmt: ProtoStmt }
  | { type: "batch"; steps: { condition: BatchCond | undefined; stmt: ProtoStmt }[] }
  | { type: "sequence"; sql?: string; sqlId?: number }
  | { type: "describe"; sql?: string; sqlId?: number }
  | { type: "store_sql"; sqlId: number; sql: string }
  | { type: "close_sql"; sqlId: number }
  | { type: "get_autocommit" };

/** A pipeline request: the stream's baton (absent for a new stream) and its requests. */
export interface PipelineRequest {
  baton: string | undefined;
  requests: StreamRequest[];
}

/** An error as Hrana carries it. */
export interface ProtoError {
  message: string;
  code: string;
}

function fail(message: string): never {
  throw new ServerError(400, "HRANA_PROTO_ERROR", `Invalid Hrana request: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function sqlId(value: unknown, where: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) fail(`${where} is not a whole number`);
  return value as number;
}

function optionalText(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") fail(`${where} is not a string`);
  return value;
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decodes a Hrana value into the argument @libsql/client would bind: integers as bigint, blobs as bytes. */
export function decodeValue(value: unknown, where: string): InValue {
  if (!isObject(value)) fail(`${where} is not a value object`);
  switch (value.type) {
    case "null":
      return null;
    case "integer": {
      const text = value.value;
      if (typeof text !== "string" || !/^-?\d{1,19}$/.test(text)) fail(`${where} is not an integer string`);
      const n = BigInt(text);
      if (n > 9223372036854775807n || n < -9223372036854775808n) fail(`${where} is outside 64 bits`);
      return n;
    }
    case "float":
      if (typeof value.value !== "number") fail(`${where} is not a number`);
      return value.value;
    case "text":
      if (typeof value.value !== "string") fail(`${where} is not a string`);
      return value.value;
    case "blob": {
      const text = value.base64;
      if (typeof text !== "string" || !BASE64.test(text)) fail(`${where} is not base64`);
      return decodeBase64(text);
    }
    default:
      fail(`${where} has unknown type ${JSON.stringify(value.type)}`);
  }
}

function decodeStmt(value: unknown, where: string): ProtoStmt {
  if (!isObject(value)) fail(`${where} is not an object`);
  const sql = optionalText(value.sql, `${where}.sql`);
  const id = value.sql_id === undefined || value.sql_id === null
    ? undefined
    : sqlId(value.sql_id, `${where}.sql_id`);
  if ((sql === undefined) === (id === undefined)) fail(`${where} needs exactly one of sql and sql_id`);
  const args = value.args ?? [];
  if (!Array.isArray(args)) fail(`${where}.args is not an array`);
  const named = value.named_args ?? [];
  if (!Array.isArray(named)) fail(`${where}.named_args is not an array`);
  const stmt: ProtoStmt = {
    args: args.map((a, i) => decodeValue(a, `${where}.args[${i}]`)),
    namedArgs: named.map((a, i): [string, InValue] => {
      if (!isObject(a) || typeof a.name !== "string") fail(`${where}.named_args[${i}] has no name`);
      return [a.name, decodeValue(a.value, `${where}.named_args[${i}].value`)];
    }),
    wantRows: value.want_rows !== false,
  };
  if (sql !== undefined) stmt.sql = sql;
  if (id !== undefined) stmt.sqlId = id;
  return stmt;
}

function decodeCond(value: unknown, where: string, depth = 0): BatchCond {
  if (!isObject(value)) fail(`${where} is not an object`);
  if (depth > 64) fail(`${where} nests too deep`);
  switch (value.type) {
    case "ok":
    case "error":
      return { type: value.type, step: sqlId(value.step, `${where}.step`) };
    case "not":
      return { type: "not", cond: decodeCond(value.cond, `${where}.cond`, depth + 1) };
    case "and":
    case "or": {
      if (!Array.isArray(value.conds)) fail(`${where}.conds is not an array`);
      return {
        type: value.type,
        conds: value.conds.map((c, i) => decodeCond(c, `${where}.conds[${i}]`, depth + 1)),
      };
    }
    case "is_autocommit":
      return { type: "is_autocommit" };
    default:
      fail(`${where} has unknown type ${JSON.stringify(value.type)}`);
  }
}

function decodeRequest(value: unknown, where: string): StreamRequest {
  if (!isObject(value)) fail(`${where} is not an object`);
  switch (value.type) {
    case "close":
    case "get_autocommit":
      return { type: value.type };
    case "execute":
      return { type: "execute", stmt: decodeStmt(value.stmt, `${where}.stmt`) };
    case "batch": {
      const batch = value.batch;
      if (!isObject(batch) || !Array.isArray(batch.steps)) fail(`${where}.batch.steps is not an array`);
      return {
        type: "batch",
        steps: batch.steps.map((step, i) => {
          const at = `${where}.batch.steps[${i}]`;
          if (!isObject(step)) fail(`${at} is not an object`);
          const condition = step.condition === undefined || step.condition === null
            ? undefined
            : decodeCond(step.condition, `${at}.condition`);
          return { condition, stmt: decodeStmt(step.stmt, `${at}.stmt`) };
        }),
      };
    }
    case "sequence":
    case "describe": {
      const sql = optionalText(value.sql, `${where}.sql`);
      const id = value.sql_id === undefined || value.sql_id === null
        ? undefined
        : sqlId(value.sql_id, `${where}.sql_id`);
      if ((sql === undefined) === (id === undefined)) fail(`${where} needs exactly one of sql and sql_id`);
      return id === undefined ? { type: value.type, sql: sql! } : { type: value.type, sqlId: id };
    }
    case "store_sql": {
      const sql = optionalText(value.sql, `${where}.sql`);
      if (sql === undefined) fail(`${where}.sql is missing`);
      return { type: "store_sql", sqlId: sqlId(value.sql_id, `${where}.sql_id`), sql };
    }
    case "close_sql":
      return { type: "close_sql", sqlId: sqlId(value.sql_id, `${where}.sql_id`) };
    default:
      fail(`${where} has unknown type ${JSON.stringify(value.type)}`);
  }
}

/** Reads a pipeline request body (parsed JSON); throws `HRANA_PROTO_ERROR` (400) when it is not one. */
export function decodePipeline(body: unknown): PipelineRequest {
  if (!isObject(body)) fail("the body is not a JSON object");
  const baton = optionalText(body.baton, "baton");
  if (!Array.isArray(body.requests)) fail("requests is not an array");
  return { baton, requests: body.requests.map((r, i) => decodeRequest(r, `requests[${i}]`)) };
}

// --- writing ---

/** Writes a value returned with intMode "bigint" as Hrana JSON (floats keep -0 and infinities). */
export function encodeValue(value: unknown): string {
  if (value === null || value === undefined) return '{"type":"null"}';
  if (typeof value === "bigint") return `{"type":"integer","value":"${value}"}`;
  if (typeof value === "number") {
    let n: string;
    if (Object.is(value, -0)) n = "-0.0";
    else if (value === Infinity) n = "1e999";
    else if (value === -Infinity) n = "-1e999";
    else n = Number.isFinite(value) ? JSON.stringify(value) : "null";
    return n === "null" ? '{"type":"null"}' : `{"type":"float","value":${n}}`;
  }
  if (typeof value === "string") return `{"type":"text","value":${JSON.stringify(value)}}`;
  if (value instanceof ArrayBuffer) return `{"type":"blob","base64":"${toBase64(new Uint8Array(value))}"}`;
  if (value instanceof Uint8Array) return `{"type":"blob","base64":"${toBase64(value)}"}`;
  return `{"type":"text","value":${JSON.stringify(String(value))}}`;
}

/** Writes a result set as a Hrana `StmtResult`; returns the JSON and its row count. */
export function encodeResult(result: ResultSet, wantRows: boolean): string {
  const cols = result.columns.map((name, i) => ({ name, decltype: result.columnTypes[i] || null }));
  const rows = wantRows
    ? result.rows.map((row) => {
      const parts: string[] = [];
      for (let i = 0; i < row.length; i++) parts.push(encodeValue(row[i]));
      return `[${parts.join(",")}]`;
    })
    : [];
  const rowid = result.lastInsertRowid === undefined ? "null" : `"${result.lastInsertRowid}"`;
  return `{"cols":${JSON.stringify(cols)},"rows":[${
    rows.join(",")
  }],"affected_row_count":${result.rowsAffected},` +
    `"last_insert_rowid":${rowid}}`;
}

const MAX_MESSAGE = 1000;

/**
 * An error for a Hrana result: its code, and its message (at most 1000 characters) without the `CODE: `
 * prefix the client adds back.
 */
export function protoError(error: unknown): ProtoError {
  if (error instanceof ServerError) return { message: error.message, code: error.code };
  const e = error as { message?: unknown; code?: unknown };
  const code = typeof e?.code === "string" && e.code !== "" ? e.code : "INTERNAL_ERROR";
  let message = typeof e?.message === "string" ? e.message : String(error);
  if (message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
  // SQLite's messages may quote the statement's names: a 100 KB name is not worth sending back whole.
  if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}…`;
  return { message, code };
}

/** Decodes base64, padded or not, standard or URL-safe (all of which the client itself accepts). */
function decodeBase64(text: string): Uint8Array {
  const standard = text.replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/");
  if (standard.length % 4 === 1) fail("a blob's base64 has a bad length");
  return fromBase64(standard + "=".repeat((4 - (standard.length % 4)) % 4));
}
