/**
 * `tessera ls`: the databases in a store, or one database's history.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DATABASES_PREFIX } from "../manifest/keys.ts";
import { listHistory, loadLatest } from "../restore/manifest_source.ts";
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
every snapshot kept for one database (restore one with "tessera restore --sequence N").

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
      for (const entry of await listHistory(store, name)) {
        const at = entry.lastModified?.toISOString() ?? "";
        if (values.json) {
          io.stdout(JSON.stringify({ store: store.description, name, ...entry, lastModified: at }) + "\n");
        } else io.stdout(`${String(entry.sequence).padStart(8)}  ${at}  ${entry.key}\n`);
      }
      continue;
    }
    if (!values.json) io.stdout(`${store.description}\n`);
    for await (const item of store.list(DATABASES_PREFIX, { delimiter: "/" })) {
      if (item.type !== "prefix") continue;
      const name = item.prefix.slice(DATABASES_PREFIX.length, -1);
      const { manifest } = await loadLatest(store, name);
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
