/**
 * `tessera ls`: the databases in a store, or one database's history.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TesseraError } from "../errors.ts";
import { listDatabases, listSnapshots, loadLatest, readPointer } from "../manifest/catalog.ts";
import type { BlobStore } from "../store/types.ts";
import {
  commandContext,
  DATABASE_OPTIONS,
  databaseName,
  STORE_OPTIONS,
  STORE_OPTIONS_HELP,
} from "./_common.ts";
import { type CliIo, EXIT } from "./_io.ts";

/** `tessera ls --help`. */
export const LS_HELP =
  `Usage: tessera ls [--history (--name NAME | --source-path PATH [--hostname HOST] | --source URL)]

List the databases in each store with their newest sequence, size and time; with --history, list
every snapshot kept for one database, oldest first: its sequence, when it was taken, the image's
length, and "*" on the one the pointer names (restore one with "tessera restore --sequence N" or
"--at TIME"; "tessera prune" thins the history).

Options:
  --history            list one database's snapshots
  --name NAME, --source-path PATH, --hostname HOST, --source URL   that database
${STORE_OPTIONS_HELP}
`;

/** Runs `tessera ls`. */
export async function lsCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      history: { type: "boolean", default: false },
      ...DATABASE_OPTIONS,
    },
  });
  if (values.help) {
    io.stdout(LS_HELP);
    return EXIT.ok;
  }
  const context = await commandContext(values, io);
  const one = values.history || values.name || values["source-path"] || values.source;
  for (const store of context.readable) {
    if (one) {
      const name = await databaseName(values, io);
      const current = await pointerSequence(store, name);
      if (!values.json) io.stdout(`${store.description} ${name}\n`);
      for (const entry of await listSnapshots(store, name)) {
        const created = new Date(entry.createdMs).toISOString();
        const isCurrent = entry.sequence === current;
        if (values.json) {
          const lastModified = entry.lastModified?.toISOString() ?? "";
          io.stdout(
            JSON.stringify({
              store: store.description,
              name,
              ...entry,
              lastModified,
              created,
              current: isCurrent,
            }) +
              "\n",
          );
        } else {
          io.stdout(
            `${isCurrent ? "*" : " "} ${String(entry.sequence).padStart(8)}  ${created}  ` +
              `${String(entry.imageLength).padStart(12)} bytes  ${entry.key}\n`,
          );
        }
      }
      continue;
    }
    if (!values.json) io.stdout(`${store.description}\n`);
    for (const name of await listDatabases(store)) {
      let manifest;
      try {
        ({ manifest } = await loadLatest(store, name));
      } catch (error) {
        // A replicator that took the database's lease has not published its first snapshot yet.
        if (!(error instanceof TesseraError && error.code === "NOT_FOUND")) throw error;
        if (values.json) io.stdout(JSON.stringify({ store: store.description, name, sequence: null }) + "\n");
        else io.stdout(`  ${name}  no snapshot yet\n`);
        continue;
      }
      const row = {
        store: store.description,
        name,
        sequence: manifest.sequence,
        imageLength: manifest.imageLength,
        created: new Date(manifest.createdMs).toISOString(),
        hostname: manifest.identity.hostname,
        sourcePath: manifest.identity.sourcePath,
      };
      if (values.json) io.stdout(JSON.stringify(row) + "\n");
      else {io.stdout(
          `  ${name}  seq ${row.sequence}  ${row.imageLength} bytes  ${row.created}  ${row.hostname}:${row.sourcePath}\n`,
        );}
    }
  }
  return EXIT.ok;
}

// The sequence the pointer names, or undefined without one; a damaged pointer does not hide the history.
async function pointerSequence(store: BlobStore, name: string): Promise<number | undefined> {
  try {
    return (await readPointer(store, name))?.sequence;
  } catch (error) {
    if (!(error instanceof TesseraError && error.code === "CORRUPT_POINTER")) throw error;
    return undefined;
  }
}
