/**
 * `tessera prune`: apply a retention policy to one database's history, or every database's.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TesseraError } from "../errors.ts";
import { pruneDatabase, type PruneReport, type RetentionPolicy } from "../history/prune.ts";
import {
  commandContext,
  DATABASE_OPTIONS,
  databaseName,
  STORE_OPTIONS,
  STORE_OPTIONS_HELP,
} from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { checkSelection, chosenDatabases, writableStores } from "./_selection.ts";
import { durationOption } from "./_values.ts";

/** `tessera prune --help`. */
export const PRUNE_HELP =
  `Usage: tessera prune (--name NAME | --source-path PATH [--hostname HOST] | --source URL | --all)
                     RULE... [--dry-run] [options]

Delete the snapshots (manifests) of a database's history that no rule keeps, in every writable
store. A snapshot is kept when ANY rule keeps it; the one the pointer names, and any newer one (a
sync publishing), are always kept. Chunks are not deleted: run "tessera gc" for that.

Rules (at least one):
  --keep-last N          the newest N snapshots
  --keep-within DURATION every snapshot taken within DURATION before now: 30m, 12h, 7d, 2w
  --keep-hourly N        the newest snapshot of each of the last N hours (UTC) that have snapshots
  --keep-daily N         the newest snapshot of each of the last N days (UTC) that have snapshots

Options:
  --name NAME, --source-path PATH, --hostname HOST, --source URL   the database
  --all                  every database in the stores
  --dry-run              print what would be deleted, and delete nothing
${STORE_OPTIONS_HELP}

Exit codes: 0 done, 1 failed, 2 bad usage, 3 no such database.
`;

/** Runs `tessera prune`. */
export async function pruneCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      ...DATABASE_OPTIONS,
      all: { type: "boolean", default: false },
      "keep-last": { type: "string" },
      "keep-within": { type: "string" },
      "keep-hourly": { type: "string" },
      "keep-daily": { type: "string" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  if (values.help) {
    io.stdout(PRUNE_HELP);
    return EXIT.ok;
  }
  const policy: Omit<RetentionPolicy, "pointerSequence"> = {
    keepLast: count(values["keep-last"], "--keep-last"),
    keepWithinMs: durationOption("--keep-within", values["keep-within"]),
    keepHourly: count(values["keep-hourly"], "--keep-hourly"),
    keepDaily: count(values["keep-daily"], "--keep-daily"),
  };
  if (Object.values(policy).every((v) => v === undefined)) {
    throw new UsageError(
      "prune: give at least one rule: --keep-last N, --keep-within DURATION, --keep-hourly N, --keep-daily N",
    );
  }
  checkSelection(values, "prune");
  const context = await commandContext(values, io);
  const stores = writableStores(context.stores, "prune");
  const dryRun = values["dry-run"];
  let found = 0;
  for (const store of stores) {
    for (const name of await chosenDatabases(values, io, store)) {
      const report = await pruneDatabase(store, name, policy, { dryRun });
      if (report.kept.length + report.deleted.length > 0) found++;
      print(io, report, values.json);
    }
  }
  if (found === 0 && !values.all) {
    throw new TesseraError(
      "NOT_FOUND",
      `prune: database "${await databaseName(values, io)}" has no snapshots in ${
        stores.map((s) => s.description).join(", ")
      }; check --name/--source-path/--hostname`,
    );
  }
  return EXIT.ok;
}

function print(io: CliIo, report: PruneReport, json: boolean): void {
  if (json) {
    io.stdout(JSON.stringify(report) + "\n");
    return;
  }
  const verb = report.dryRun ? "would delete" : "deleted";
  io.stdout(
    `${report.store} ${report.name}: kept ${report.kept.length}, ${verb} ${report.deleted.length}` +
      `${report.dryRun ? " (dry run: nothing deleted)" : ""}\n`,
  );
  const rows = [
    ...report.deleted.map((e) => ({ ...e, what: verb })),
    ...report.kept.map((e) => ({ ...e, what: "keep" })),
  ].sort((a, b) => a.sequence - b.sequence);
  for (const row of rows) {
    const why = row.reasons.length > 0 ? `  (${row.reasons.join(", ")})` : "";
    io.stdout(`  ${row.what.padEnd(12)} ${String(row.sequence).padStart(8)}  ${row.created}${why}\n`);
  }
}

function count(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${option} takes a whole number ≥ 1, not ${JSON.stringify(text)}`);
  }
  return n;
}
