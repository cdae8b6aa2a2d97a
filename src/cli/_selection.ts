/**
 * Choosing what the history commands (prune, gc, touch) work on: one database or `--all`, in the writable
 * stores.
 *
 * @module
 */

import { listDatabases } from "../manifest/catalog.ts";
import type { BlobStore } from "../store/types.ts";
import { databaseName } from "./_common.ts";
import { type CliIo, UsageError } from "./_io.ts";

/** Values that choose databases: one by name, path or URL, or `--all`. */
export interface DatabaseSelection {
  all?: boolean | undefined;
  name?: string | undefined;
  hostname?: string | undefined;
  "source-path"?: string | undefined;
  source?: string | undefined;
}

/** Throws `UsageError` unless exactly one of `--all` and a database is given. */
export function checkSelection(values: DatabaseSelection, command: string): void {
  const one = Boolean(values.name || values["source-path"] || values.source);
  if (values.all && one) throw new UsageError(`${command}: give --all or one database, not both`);
  if (!values.all && !one) {
    throw new UsageError(
      `${command}: name the database (--name NAME, --source-path PATH [--hostname HOST], --source URL) ` +
        "or give --all",
    );
  }
}

/** The databases the options choose in `store`: every one with `--all`, else the one named. */
export async function chosenDatabases(
  values: DatabaseSelection,
  io: CliIo,
  store: BlobStore,
): Promise<string[]> {
  return values.all ? await listDatabases(store) : [await databaseName(values, io)];
}

/** The writable stores, or a `UsageError` naming the command when there are none. */
export function writableStores(stores: BlobStore[], command: string): BlobStore[] {
  const writable = stores.filter((s) => s.capabilities.write);
  if (writable.length === 0) {
    throw new UsageError(
      `${command}: no writable store: give --store DIR|s3://bucket/prefix, or a config target`,
    );
  }
  return writable;
}
