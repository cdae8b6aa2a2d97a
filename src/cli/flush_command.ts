/**
 * `tessera flush DB`: ask the running replicator of a database to capture and publish now, and wait until
 * every store has it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TesseraError } from "../errors.ts";
import { readStatus, requestFlush } from "../replicate/control.ts";
import { Spool } from "../write/spool.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { namesFor, REPLICATOR_OPTIONS, spoolOf } from "./_spool.ts";
import { wholeNumberOption } from "./_values.ts";

/** `tessera flush --help`. */
export const FLUSH_HELP = `Usage: tessera flush DB [--name NAME] [--spool DIR] [--timeout-ms N] [--json]

Ask the running replicator of DB to capture and publish now, and wait until every store has every
pending snapshot (or the timeout passes).

Options:
  --name NAME       the database by its stored name instead of DB
  --hostname HOST   the host name in derived names (default: this machine)
  --spool DIR       the spool directory (default: config spool_dir, or $TMPDIR/tessera-spool-UID)
  --timeout-ms N    how long to wait (default 60000)
  -c, --config C    a config (for its spool_dir)
  --json            print the answer as JSON
  -h, --help        show this help

Exit codes: 0 everything published, 1 something still pending or no replicator answered, 2 bad usage.
`;

/** Runs `tessera flush`. */
export async function flushCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...REPLICATOR_OPTIONS, "timeout-ms": { type: "string" } },
  });
  if (values.help) {
    io.stdout(FLUSH_HELP);
    return EXIT.ok;
  }
  const names = await namesFor(values, positionals, io);
  if (names.length !== 1) throw new UsageError("flush: give one DB (or --name NAME)");
  const spoolDir = await spoolOf(values, io);
  const dir = Spool.dirFor(spoolDir, names[0] as string);
  const status = await readStatus(dir);
  if (!status?.running) {
    throw new TesseraError(
      "NOT_FOUND",
      `No running replicator for ${
        names[0]
      } in ${spoolDir}: start one with tessera replicate, or give its --spool`,
    );
  }
  const answer = await requestFlush(
    dir,
    wholeNumberOption(values, "timeout-ms", { fallback: 60_000, min: 1 }),
  );
  if (values.json) io.stdout(JSON.stringify({ name: names[0], ...answer }) + "\n");
  else if (answer.ok) io.stdout(`${names[0]}: everything published (sequence ${answer.sequence})\n`);
  else {io.stdout(
      `${names[0]}: ${answer.pending ?? "?"} snapshot(s) still pending${
        answer.error ? `: ${answer.error}` : ""
      }\n`,
    );}
  return answer.ok ? EXIT.ok : EXIT.failure;
}
