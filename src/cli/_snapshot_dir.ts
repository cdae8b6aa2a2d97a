/**
 * The `DIR` argument of `tessera restore`: a snapshot directory written by `tessera snapshot DB DIR`, read
 * as a local-directory store on its own.
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { TesseraError } from "../errors.ts";
import { databaseNames } from "../snapshot/directory.ts";
import { LocalStore } from "../store/local.ts";
import type { CommandContext } from "./_common.ts";
import { UsageError } from "./_io.ts";

/** What {@linkcode directoryContext} reads of the restore command's options. */
export interface DirectoryChoice {
  store?: string[] | undefined;
  name?: string | undefined;
  "source-path"?: string | undefined;
  source?: string | undefined;
  manifest?: string | undefined;
}

/**
 * `tessera restore DIR`: the context of the directory store DIR alone (no cache, no config targets), or
 * `undefined` without a positional argument. When the options name no database, the one database in DIR
 * is chosen and written to `values.name`; with several, the user must choose.
 */
export async function directoryContext(
  positionals: string[],
  values: DirectoryChoice,
): Promise<CommandContext | undefined> {
  const [dir, ...extra] = positionals;
  if (dir === undefined) return undefined;
  if (extra.length > 0) throw new UsageError(`restore: unexpected argument "${extra[0]}"; give one DIR`);
  if (values.store?.length) {
    // `tessera restore app --store DIR` most often means the database named app in DIR.
    const isDirectory = (await stat(resolve(dir)).catch(() => undefined))?.isDirectory();
    const hint = isDirectory || values.name !== undefined
      ? ""
      : ` (to restore the database named "${dir}" from the store, give --name ${dir})`;
    throw new UsageError(`restore: give either a snapshot directory DIR or --store, not both${hint}`);
  }
  const root = resolve(dir);
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new TesseraError(
      "NOT_FOUND",
      `Cannot restore from "${root}": no such directory (write one with tessera snapshot DB DIR)`,
    );
  }
  const store = new LocalStore(root);
  const context: CommandContext = {
    config: { targets: [{ kind: "directory", directory: root }], readOnly: [], readOnlyCaches: [] },
    stores: [store],
    readable: [store],
  };
  if (values.name || values["source-path"] || values.source || values.manifest) return context;
  const names = await databaseNames(store);
  if (names.length === 0) {
    throw new TesseraError(
      "NOT_FOUND",
      `Cannot restore from "${root}": it holds no database snapshot (no dbs/<name>/pointer)`,
    );
  }
  if (names.length > 1) {
    throw new UsageError(
      `restore: "${root}" holds ${names.length} databases; choose one with --name: ${names.join(", ")}`,
    );
  }
  values.name = names[0];
  return context;
}
