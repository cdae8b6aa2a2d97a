/**
 * `tessera query SOURCE SQL`: run SQL on a read replica and print the rows.
 *
 * @module
 */

import type { ResultSet } from "@libsql/core/api";
import { parseArgs } from "node:util";
import type { Replica } from "../replica/replica.ts";
import { STORE_OPTIONS_HELP } from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import {
  openReplicaFor,
  REPLICA_OPTIONS,
  REPLICA_OPTIONS_HELP,
  sourceInOptions,
} from "./_replica_options.ts";
import { resultJson } from "../replica/result_json.ts";
import { formatTable, sqlError } from "./_results.ts";
import { splitStatements } from "../replica/statements.ts";

/** `tessera query --help`. */
export const QUERY_HELP = `Usage: tessera query SOURCE SQL [SQL...] [options]
       tessera query (--name NAME | --source-path PATH | --source URL | --manifest FILE|KEY) SQL [options]

Open a read replica of a database (its newest snapshot, or --sequence N), fetching and verifying the
chunks it needs, run the SQL (one or more statements separated by ";", all in one read transaction on
one snapshot), and print each statement's rows. Nothing is ever written to a store; statements that
would write fail with SQLite's "attempt to write a readonly database".

Output: an aligned table per statement (NULL as NULL, blobs as x'hex', integers exact), or with
--json one line per statement: {"columns": [...], "rows": [{"column": value, ...}], "sequence": N},
where an integer is a JSON number up to ±(2^53 - 1) and a decimal string beyond (every integer is a
string with --int-mode string), a blob is base64, and a repeated column name gets ":2", ":3".

Options:
${REPLICA_OPTIONS_HELP}
  --arg VALUE          bind VALUE (as text) to the next "?" of a single statement (repeatable)
${STORE_OPTIONS_HELP}

Exit codes: 0 done, 1 failed (an SQL error prints SQLite's message), 2 bad usage, 3 no such database
or snapshot.
`;

/** Runs `tessera query`. */
export async function queryCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...REPLICA_OPTIONS, arg: { type: "string", multiple: true } },
  });
  if (values.help) {
    io.stdout(QUERY_HELP);
    return EXIT.ok;
  }
  const named = sourceInOptions(values);
  const source = named ? undefined : positionals[0];
  const texts = named ? positionals : positionals.slice(1);
  const statements = texts.flatMap((text) => {
    const { statements, rest } = splitStatements(text);
    return rest === "" ? statements : [...statements, rest];
  });
  if (statements.length === 0) {
    throw new UsageError(
      source === undefined && !named
        ? "query: give the database and the SQL to run: tessera query SOURCE SQL"
        : `query: give the SQL to run${source === undefined ? "" : ` on "${source}"`} (or use tessera shell)`,
    );
  }
  const bound = values.arg ?? [];
  if (bound.length > 0 && statements.length > 1) {
    throw new UsageError("query: --arg binds the parameters of one statement; give one statement");
  }
  const replica = await openReplicaFor("query", values, source, io, { autoRefresh: true, pollIntervalMs: 0 });
  let tables = 0;
  try {
    await runStatements(replica, statements, bound, (result) => {
      if (values.json) return io.stdout(resultJson(result, replica.sequence));
      const table = formatTable(result);
      if (table === "") return;
      io.stdout(tables++ > 0 ? "\n" + table : table);
    });
  } catch (error) {
    const sql = sqlError(error);
    if (!sql) throw error;
    if (values.json) io.stdout(JSON.stringify({ ok: false, error: sql }) + "\n");
    else io.stderr(`tessera: ${sql.message}\n`);
    return EXIT.failure;
  } finally {
    replica.close();
  }
  return EXIT.ok;
}

// One statement runs on its own; several share one read transaction, so they see one snapshot.
async function runStatements(
  replica: Replica,
  statements: string[],
  args: string[],
  print: (result: ResultSet) => void,
): Promise<void> {
  if (statements.length === 1) {
    print(await replica.execute({ sql: statements[0] as string, args }));
    return;
  }
  const transaction = await replica.transaction("read");
  try {
    for (const sql of statements) print(await transaction.execute(sql));
  } finally {
    transaction.close();
  }
}
