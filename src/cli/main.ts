/**
 * The `tessera` command line: `deno task tessera <args>` or `bun run src/cli/main.ts <args>`.
 *
 * @module
 */

import process from "node:process";
import { VERSION } from "../version.ts";
import { type CliIo, EXIT, processIo, reportError, UsageError } from "./_io.ts";
import { BENCH_HELP, benchCommand } from "./bench_command.ts";
import { FLUSH_HELP, flushCommand } from "./flush_command.ts";
import { GC_HELP, gcCommand } from "./gc_command.ts";
import { LS_HELP, lsCommand } from "./ls_command.ts";
import { MANIFEST_HELP, manifestCommand } from "./manifest_command.ts";
import { PRUNE_HELP, pruneCommand } from "./prune_command.ts";
import { QUERY_HELP, queryCommand } from "./query_command.ts";
import { REPLICATE_HELP, replicateCommand } from "./replicate_command.ts";
import { RESTORE_HELP, restoreCommand } from "./restore_command.ts";
import { SERVE_HELP, serveCommand } from "./serve_command.ts";
import { SHELL_HELP, shellCommand } from "./shell_command.ts";
import { SNAPSHOT_HELP, snapshotCommand } from "./snapshot_command.ts";
import { STATUS_HELP, statusCommand } from "./status_command.ts";
import { STORE_HELP, storeCommand } from "./store_command.ts";
import { SYNC_HELP, syncCommand } from "./sync_command.ts";
import { TOUCH_HELP, touchCommand } from "./touch_command.ts";

/** `tessera --help`. */
export const MAIN_HELP = `tessera ${VERSION}: replicate SQLite databases to S3-compatible storage as
content-addressed chunks, and restore verified snapshots anywhere.

Usage: tessera <command> [options]

Commands:
  sync      Publish a snapshot of SQLite databases to the stores
  replicate Keep SQLite databases published while they are written (until stopped)
  status    Show what running replicators are doing
  flush     Ask a running replicator to publish now
  restore   Rebuild a database file from a snapshot, verified
  snapshot  Write a self-contained snapshot of a database into a directory (a shared filesystem)
  manifest  Show or save a snapshot's manifest
  ls        List databases in the stores, or one database's history
  prune     Delete old snapshots by a retention policy (--keep-last, --keep-daily, ...)
  gc        Delete chunks no kept snapshot references, after a grace period
  touch     Write again old chunks live snapshots use (for buckets that expire objects)
  query     Run SQL on a read replica and print the rows (a table, or --json)
  shell     A read-only SQL prompt on a read replica (reads a script from a pipe)
  serve     Serve read replicas over HTTP to libSQL clients and curl (until stopped)
  store     Look at and move objects in a store (ls, get, head, put, rm)
  bench     Measure a store's throughput and latency; recommend a restore concurrency
  version   Print the version
  help      Show help for a command: tessera help store

Options:
  -h, --help      Show help
  -c, --config C  The config (a JSON file, @file or inline JSON), before or after the command
  -V, --version   Print the version
  --json          Machine-readable output (where a command supports it)

Stores come from --store (s3://bucket/prefix, file:///dir, a directory) or a config given with -c or
$TESSERA_CONFIG (docs/CONFIG.md); S3 credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.

Exit codes: 0 done, 1 failed, 2 bad usage, 3 not found.
`;

const COMMANDS: Record<string, { help: string; run: (args: string[], io: CliIo) => Promise<number> }> = {
  sync: { help: SYNC_HELP, run: syncCommand },
  replicate: { help: REPLICATE_HELP, run: replicateCommand },
  status: { help: STATUS_HELP, run: statusCommand },
  flush: { help: FLUSH_HELP, run: flushCommand },
  restore: { help: RESTORE_HELP, run: restoreCommand },
  snapshot: { help: SNAPSHOT_HELP, run: snapshotCommand },
  manifest: { help: MANIFEST_HELP, run: manifestCommand },
  ls: { help: LS_HELP, run: lsCommand },
  prune: { help: PRUNE_HELP, run: pruneCommand },
  gc: { help: GC_HELP, run: gcCommand },
  touch: { help: TOUCH_HELP, run: touchCommand },
  query: { help: QUERY_HELP, run: queryCommand },
  shell: { help: SHELL_HELP, run: shellCommand },
  serve: { help: SERVE_HELP, run: serveCommand },
  store: { help: STORE_HELP, run: storeCommand },
  bench: { help: BENCH_HELP, run: benchCommand },
};

/**
 * Runs the CLI with `args` (without the program name) and returns the exit code.
 *
 * @example
 * ```ts
 * import { run } from "./main.ts";
 * const code = await run(["--version"]);
 * console.log(code); // 0
 * ```
 */
export async function run(argv: string[], io: CliIo = processIo()): Promise<number> {
  const args = hoistConfig(argv);
  const [first, ...rest] = args;
  const json = args.includes("--json");
  try {
    if (first === undefined || first === "-h" || first === "--help") {
      io.stdout(MAIN_HELP);
      return first === undefined ? EXIT.usage : EXIT.ok;
    }
    if (first === "-V" || first === "--version" || first === "version") {
      io.stdout(json ? JSON.stringify({ version: VERSION }) + "\n" : `tessera ${VERSION}\n`);
      return EXIT.ok;
    }
    if (first === "help") {
      const topic = rest[0];
      if (topic === undefined) {
        io.stdout(MAIN_HELP);
        return EXIT.ok;
      }
      const command = COMMANDS[topic];
      if (!command) throw new UsageError(`help: unknown command "${topic}"`);
      io.stdout(command.help);
      return EXIT.ok;
    }
    const command = COMMANDS[first];
    if (!command) throw new UsageError(`unknown command "${first}"`);
    return await command.run(rest, io);
  } catch (error) {
    return reportError(io, asUsage(error), json);
  }
}

// Verneuil's commands put the config first ("-c @file sync db"); commands take it as their own option.
function hoistConfig(args: string[]): string[] {
  const config: string[] = [];
  let i = 0;
  while (i < args.length) {
    const arg = args[i] as string;
    if ((arg === "-c" || arg === "--config") && i + 1 < args.length) {
      config.push("--config", args[i + 1] as string);
      i += 2;
    } else if (arg.startsWith("--config=")) {
      config.push(arg);
      i += 1;
    } else {
      break;
    }
  }
  if (config.length === 0 || i >= args.length) return args;
  return [args[i] as string, ...args.slice(i + 1), ...config];
}

// parseArgs reports unknown or malformed options as TypeErrors with a code; they are usage mistakes.
function asUsage(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (error instanceof TypeError && typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
    return new UsageError(error.message);
  }
  return error;
}

if (import.meta.main) {
  process.exitCode = await run(process.argv.slice(2));
}
