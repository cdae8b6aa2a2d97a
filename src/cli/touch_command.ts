/**
 * `tessera touch`: write again the old chunks live snapshots reference, for buckets that expire objects.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TesseraError } from "../errors.ts";
import { formatDuration } from "../history/duration.ts";
import { DEFAULT_TOUCH_AGE_MS, touchChunks, type TouchReport } from "../history/touch.ts";
import { hasPointer } from "../manifest/catalog.ts";
import { commandContext, DATABASE_OPTIONS, STORE_OPTIONS, STORE_OPTIONS_HELP } from "./_common.ts";
import { type CliIo, EXIT } from "./_io.ts";
import { checkSelection, chosenDatabases, writableStores } from "./_selection.ts";
import { durationOption } from "./_values.ts";

/** `tessera touch --help`. */
export const TOUCH_HELP =
  `Usage: tessera touch (--name NAME | --source-path PATH [--hostname HOST] | --source URL | --all)
                     [--older-than DURATION] [--all-manifests] [--dry-run] [options]

Write again, in every writable store, each chunk the newest snapshot references that the store
wrote longer ago than --older-than: read it, check it against its id, put the same bytes. With a
bucket lifecycle rule that expires objects N days after they were written, touching more often
than every N days keeps every live chunk (Verneuil's workers do the same).

Options:
  --name NAME, --source-path PATH, --hostname HOST, --source URL   the database
  --all                  every database in the stores
  --older-than DURATION  touch chunks written longer ago than this (default ${
    formatDuration(DEFAULT_TOUCH_AGE_MS)
  })
  --all-manifests        every kept snapshot's chunks, not only the newest's
  --dry-run              count what would be written, and write nothing
${STORE_OPTIONS_HELP}

Exit codes: 0 done, 1 failed or chunks missing or damaged (listed), 2 bad usage, 3 no such database.
`;

/** Runs `tessera touch`. */
export async function touchCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      ...DATABASE_OPTIONS,
      all: { type: "boolean", default: false },
      "older-than": { type: "string" },
      "all-manifests": { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
    },
  });
  if (values.help) {
    io.stdout(TOUCH_HELP);
    return EXIT.ok;
  }
  const olderThanMs = durationOption("--older-than", values["older-than"]) ?? DEFAULT_TOUCH_AGE_MS;
  checkSelection(values, "touch");
  const context = await commandContext(values, io);
  let damaged = 0;
  for (const store of writableStores(context.stores, "touch")) {
    for (const name of await chosenDatabases(values, io, store)) {
      // With --all, a database without a pointer yet (a first sync in progress) has no newest snapshot.
      if (values.all && !values["all-manifests"]) {
        if (!await hasPointer(store, name)) continue;
      }
      const report = await touchChunks(store, name, {
        olderThanMs,
        allManifests: values["all-manifests"],
        dryRun: values["dry-run"],
      });
      if (report.manifests === 0 && !values.all) {
        throw new TesseraError(
          "NOT_FOUND",
          `touch: database "${name}" has no snapshots in ${store.description}; check --name/--source-path`,
        );
      }
      damaged += report.missing.length + report.corrupt.length;
      if (values.json) io.stdout(JSON.stringify(report) + "\n");
      else print(io, report);
    }
  }
  return damaged > 0 ? EXIT.failure : EXIT.ok;
}

function print(io: CliIo, report: TouchReport): void {
  const verb = report.dryRun ? "would touch" : "touched";
  io.stdout(
    `${report.store} ${report.name}: ${report.manifests} manifests, ${report.chunks} chunks; ${verb} ` +
      `${report.touched} (${report.bytes} bytes), ${report.fresh} fresh` +
      `${report.noTime > 0 ? `, ${report.noTime} without a modification time` : ""}\n`,
  );
  for (const key of report.missing) io.stdout(`  MISSING  ${key}\n`);
  for (const key of report.corrupt) io.stdout(`  DAMAGED  ${key}\n`);
}
