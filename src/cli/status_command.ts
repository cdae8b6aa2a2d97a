/**
 * `tessera status [DB...]`: what the replicators using a spool directory are doing, from the status files
 * they keep there.
 *
 * @module
 */

import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { TesseraError } from "../errors.ts";
import { readStatus, type ReplicatorStatus } from "../replicate/control.ts";
import { Spool } from "../write/spool.ts";
import { type CliIo, EXIT } from "./_io.ts";
import { namesFor, REPLICATOR_OPTIONS, spoolOf } from "./_spool.ts";

/** `tessera status --help`. */
export const STATUS_HELP = `Usage: tessera status [DB...] [--name NAME] [--spool DIR] [--json]

Show what the replicators using the spool directory are doing: running or not, pending snapshots and
bytes, the last snapshot published to every store and when, failures per store, and the lag (how long
the oldest unpublished snapshot has waited). Without DB, every database in the spool.

Options:
  --name NAME       a database by its stored name
  --hostname HOST   the host name in derived names (default: this machine)
  --spool DIR       the spool directory (default: config spool_dir, or $TMPDIR/tessera-spool-UID)
  -c, --config C    a config (for its spool_dir)
  --json            one JSON object per database
  -h, --help        show this help

Exit codes: 0 shown, 1 a replicator reports an error, 2 bad usage, 3 no replicator status found.
`;

/** Runs `tessera status`. */
export async function statusCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: REPLICATOR_OPTIONS });
  if (values.help) {
    io.stdout(STATUS_HELP);
    return EXIT.ok;
  }
  const spoolDir = await spoolOf(values, io);
  let names = await namesFor(values, positionals, io);
  if (names.length === 0) {
    names = await readdir(join(spoolDir, "replicate")).catch(() => [] as string[]);
  }
  const found: ReplicatorStatus[] = [];
  for (const name of names) {
    const status = await readStatus(Spool.dirFor(spoolDir, name));
    if (status) found.push(status);
  }
  if (found.length === 0) {
    throw new TesseraError(
      "NOT_FOUND",
      `No replicator status in ${spoolDir}${names.length > 0 ? ` for ${names.join(", ")}` : ""}: ` +
        "start one with tessera replicate, or give its --spool",
    );
  }
  for (const s of found) {
    if (values.json) io.stdout(JSON.stringify(s) + "\n");
    else io.stdout(describeStatus(s));
  }
  return found.some((s) => s.error) ? EXIT.failure : EXIT.ok;
}

function describeStatus(s: ReplicatorStatus): string {
  const at = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : "never");
  const lines = [
    `${s.name}  ${s.running ? `running (pid ${s.pid})` : "not running"}  ${s.path}`,
    `  pending      ${s.pending} snapshot(s), ${s.pendingBytes} bytes (bound ${s.maxSpoolBytes})`,
    `  last sync    ${s.lastSync ? `sequence ${s.lastSync.sequence} at ${at(s.lastSync.ms)}` : "none yet"}`,
    `  last capture ${
      s.lastCapture ? `sequence ${s.lastCapture.sequence} at ${at(s.lastCapture.ms)}` : "none yet"
    }`,
    `  lag          ${s.lagMs} ms`,
    `  totals       ${s.captures} captured, ${s.published} published, ${s.coalesced} coalesced, ` +
    `longest source hold ${s.longestHoldMs} ms`,
  ];
  for (const t of s.targets) {
    lines.push(
      `  ${t.store}: sequence ${t.sequence}, ${t.behind} behind, last success ${at(t.lastSuccessMs)}, ` +
        `${t.failures} failure(s)` + (t.lastError ? `; last error: ${t.lastError}` : ""),
    );
  }
  if (s.error) lines.push(`  stopped: ${s.error}`);
  return lines.join("\n") + "\n";
}
