/**
 * `tessera shell SOURCE`: a read-only SQL prompt on a replica, or a runner of the SQL piped to it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import process from "node:process";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { Replica, ReplicaStatus } from "../replica/replica.ts";
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
import { errorMessage } from "../errors.ts";

/** `tessera shell --help`. */
export const SHELL_HELP = `Usage: tessera shell SOURCE [options]
       tessera shell (--name NAME | --source-path PATH | --source URL | --manifest FILE|KEY) [options]

A read-only SQL prompt on a replica of a database. Statements end with ";" and may span lines; each
runs on the newest snapshot the replica has fetched (see --auto-refresh) and prints a table, as
"tessera query" does. SQL errors are printed and the shell goes on. Ctrl-D, .quit or .exit leaves.

When stdin is not a terminal, the shell reads statements and dot-commands from it without prompting,
and exits 1 if any of them failed (0 otherwise):  echo "SELECT count(*) FROM t;" | tessera shell app

Dot-commands:
  .refresh [0|1|2]     move to a newer snapshot and print the sequence now served: 0 the newest already
                       fetched, 1 (default) check the store first, 2 always check anew
  .status              the replica's status: sequence, times, lag, checks, last error
  .tables              list the tables and views
  .schema [TABLE]      print the CREATE statements (of the tables matching TABLE, a LIKE pattern)
  .mode table|json     print results as tables (default) or as JSON lines (as tessera query --json)
  .help                show the dot-commands
  .quit, .exit         leave

Options:
${REPLICA_OPTIONS_HELP}
  --auto-refresh       move to the newest fetched snapshot before each statement (the default)
  --no-auto-refresh    stay on one snapshot until .refresh
  --poll-interval MS   check the store for a newer snapshot every MS milliseconds in the background
                       (default 1000; 0: only on .refresh)
${STORE_OPTIONS_HELP.replace("print JSON", "start in .mode json")}

Exit codes: 0 done, 1 failed (or, reading a script, a statement failed), 2 bad usage, 3 no such
database or snapshot.
`;

const DOT_HELP =
  `.refresh [0|1|2]   move to a newer snapshot (1: check the store first) and print its sequence
.status            the replica's sequence, times, lag, checks and last error
.tables            list the tables and views
.schema [TABLE]    print the CREATE statements
.mode table|json   how results print
.help              this help
.quit, .exit       leave
`;

/** The stream the shell reads: stdin, or a test's stream. */
export type ShellInput = Readable & { isTTY?: boolean };

/** Runs `tessera shell`, reading `input` (default: stdin). */
export async function shellCommand(args: string[], io: CliIo, input?: ShellInput): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...REPLICA_OPTIONS,
      "auto-refresh": { type: "boolean" },
      "no-auto-refresh": { type: "boolean" },
      "poll-interval": { type: "string" },
    },
  });
  if (values.help) {
    io.stdout(SHELL_HELP);
    return EXIT.ok;
  }
  const named = sourceInOptions(values);
  if (positionals.length > (named ? 0 : 1)) {
    throw new UsageError(
      `shell: unexpected argument "${positionals.at(-1)}"; the shell reads SQL from its input`,
    );
  }
  if (values["auto-refresh"] && values["no-auto-refresh"]) {
    throw new UsageError("shell: give --auto-refresh or --no-auto-refresh, not both");
  }
  const pollIntervalMs = values["poll-interval"] === undefined ? 1000 : Number(values["poll-interval"]);
  if (!Number.isSafeInteger(pollIntervalMs) || pollIntervalMs < 0) {
    throw new UsageError("shell: --poll-interval takes a whole number of milliseconds ≥ 0");
  }
  const replica = await openReplicaFor("shell", values, named ? undefined : positionals[0], io, {
    autoRefresh: !values["no-auto-refresh"],
    pollIntervalMs,
  });
  const stdin = input ?? (process.stdin as ShellInput);
  try {
    return await new Shell(replica, io, values.json ? "json" : "table").run(stdin);
  } finally {
    replica.close();
    // A shell left with .quit must not wait for the rest of its input to end.
    if (input === undefined) process.stdin.destroy();
  }
}

/** One session: lines in, results out. */
class Shell {
  readonly #replica: Replica;
  readonly #io: CliIo;
  #mode: "table" | "json";
  #failed = false;

  constructor(replica: Replica, io: CliIo, mode: "table" | "json") {
    this.#replica = replica;
    this.#io = io;
    this.#mode = mode;
  }

  async run(input: ShellInput): Promise<number> {
    const tty = Boolean(input.isTTY);
    const lines = createInterface({
      input,
      output: tty ? process.stdout : undefined,
      terminal: tty,
      historySize: tty ? 1000 : 0,
    });
    let buffer = "";
    const prompt = () => {
      if (!tty) return;
      lines.setPrompt(buffer === "" ? "tessera> " : "   ...> ");
      lines.prompt();
    };
    // Ctrl-C drops the statement being typed, as in sqlite3; Ctrl-D on an empty line leaves.
    lines.on("SIGINT", () => {
      buffer = "";
      lines.write("", { ctrl: true, name: "e" });
      lines.write("", { ctrl: true, name: "u" });
      this.#io.stdout("^C\n");
      prompt();
    });
    if (tty) {
      const status = this.#replica.status();
      this.#io.stdout(
        `tessera shell: ${status.database}, sequence ${status.sequence}, read-only. ` +
          `Enter ".help" for the dot-commands.\n`,
      );
    }
    prompt();
    try {
      for await (const line of lines) {
        if (buffer === "" && line.trimStart().startsWith(".")) {
          if (await this.#dot(line.trim()) === "quit") break;
        } else {
          buffer = buffer === "" ? line : `${buffer}\n${line}`;
          const { statements, rest } = splitStatements(buffer);
          buffer = rest;
          for (const sql of statements) await this.#sql(sql);
        }
        prompt();
      }
      if (buffer !== "") await this.#sql(buffer);
    } finally {
      lines.close();
    }
    if (tty) this.#io.stdout("\n");
    return this.#failed && !tty ? EXIT.failure : EXIT.ok;
  }

  async #sql(sql: string): Promise<void> {
    try {
      this.#print(await this.#replica.execute(sql));
    } catch (error) {
      this.#fail(error);
    }
  }

  #print(result: Parameters<typeof formatTable>[0]): void {
    if (this.#mode === "json") this.#io.stdout(resultJson(result, this.#replica.sequence));
    else this.#io.stdout(formatTable(result));
  }

  #fail(error: unknown): void {
    this.#failed = true;
    const sql = sqlError(error);
    const code = sql?.code ?? (error as { code?: unknown } | null)?.code;
    const message = sql?.message ?? errorMessage(error);
    if (this.#mode === "json") {
      this.#io.stdout(
        JSON.stringify({ ok: false, error: { code: String(code ?? "ERROR"), message } }) + "\n",
      );
    } else this.#io.stderr(`Error: ${message}\n`);
  }

  async #dot(line: string): Promise<"quit" | undefined> {
    const [command = "", ...words] = line.split(/\s+/);
    try {
      switch (command) {
        case ".quit":
        case ".exit":
          return "quit";
        case ".help":
          this.#io.stdout(DOT_HELP);
          break;
        case ".mode":
          if (words[0] !== "table" && words[0] !== "json") throw new Error(`.mode takes table or json`);
          this.#mode = words[0];
          break;
        case ".refresh":
          await this.#refresh(words[0]);
          break;
        case ".status":
          this.#io.stdout(
            this.#mode === "json"
              ? JSON.stringify(this.#replica.status()) + "\n"
              : formatStatus(this.#replica.status()),
          );
          break;
        case ".tables": {
          const result = await this.#replica.execute(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite~_%' " +
              "ESCAPE '~' ORDER BY name",
          );
          for (const row of result.rows) this.#io.stdout(`${row[0]}\n`);
          break;
        }
        case ".schema": {
          const filter = words[0] === undefined ? "" : " AND tbl_name LIKE ?";
          const result = await this.#replica.execute({
            sql:
              `SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL${filter} ORDER BY tbl_name, type DESC, name`,
            args: words[0] === undefined ? [] : [words[0]],
          });
          for (const row of result.rows) this.#io.stdout(`${row[0]};\n`);
          break;
        }
        default:
          throw new Error(`unknown command "${command}"; enter ".help" for the dot-commands`);
      }
    } catch (error) {
      this.#fail(error);
    }
    return undefined;
  }

  async #refresh(word: string | undefined): Promise<void> {
    const level = word === undefined ? 1 : Number(word);
    if (level !== 0 && level !== 1 && level !== 2) throw new Error(`.refresh takes 0, 1 or 2, not "${word}"`);
    await this.#replica.refresh(level);
    const { sequence, snapshotUpdated } = this.#replica;
    this.#io.stdout(
      this.#mode === "json" ? JSON.stringify({ sequence, snapshotUpdated }) + "\n" : `sequence ${sequence}\n`,
    );
  }
}

/** `.status` for people: one "name  value" line per fact, times in ISO 8601 (UTC). */
export function formatStatus(status: ReplicaStatus): string {
  const at = (ms: number | undefined) => ms === undefined || ms === 0 ? "never" : new Date(ms).toISOString();
  const error = status.lastError;
  const facts: [string, string][] = [
    ["database", status.database],
    ["engine", status.engine],
    ["sequence", String(status.sequence)],
    ["newest fetched", String(status.newestSequence)],
    ["ctime", at(status.snapshotCtime)],
    ["updated", at(status.snapshotUpdated)],
    ["lag", `${status.lagMs} ms`],
    ["auto-refresh", status.autoRefresh ? "on" : "off"],
    [
      "polling",
      !status.follows
        ? "off (a pinned snapshot)"
        : status.pollIntervalMs === 0
        ? "off (.refresh checks)"
        : `every ${status.pollIntervalMs} ms`,
    ],
    ["checks", String(status.checks)],
    ["not modified", String(status.notModified)],
    ["failures", `${status.consecutiveFailures} in a row`],
    ["last check", at(status.lastCheckMs)],
    ["last success", at(status.lastSuccessMs)],
    ["last error", error ? `${error.code}: ${error.message} (at ${at(error.atMs)})` : "none"],
    [
      "memory",
      `${status.memory.chunkBytes} bytes in ${status.memory.chunks} chunks, ${status.memory.snapshots} snapshots`,
    ],
    ...(status.memory.capacityBytes === undefined ? [] : [[
      "loading",
      `${status.memory.lazy ? "lazy" : "eager"}; cap ${status.memory.capacityBytes} bytes, ` +
      `${status.memory.chunksLoaded} chunks fetched for queries in ${status.memory.loads} fetches, ` +
      `${status.memory.offloaded} statements in the worker`,
    ] as [string, string]]),
  ];
  return facts.map(([name, value]) => `${name.padEnd(16)}${value}\n`).join("");
}
