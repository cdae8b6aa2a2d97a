/**
 * `tessera replicate --restore-if-missing`: before replicating a database that does not exist locally,
 * rebuild it from the newest snapshot any store holds. A `-wal`, `-shm` or `-journal` left beside the
 * missing file belongs to a database that no longer exists, and SQLite would apply it to the restored one,
 * so it is removed first (as zlayer-storage's restore does).
 *
 * @module
 */

import { storeLocator } from "../manifest/locate.ts";
import { randomBytes } from "node:crypto";
import { link, lstat, mkdir, rename, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { readThrough } from "../chunk/layers.ts";
import type { ChunkCache } from "../chunk/source.ts";
import { errorMessage, TesseraError } from "../errors.ts";
import { syncDir } from "../files.ts";
import { findSnapshot, type FoundSnapshot } from "../manifest/catalog.ts";
import { restoreImage } from "../restore/restore.ts";
import type { BlobStore } from "../store/types.ts";

/** Options of {@linkcode restoreIfMissing}. */
export interface RestoreIfMissingOptions {
  /** The stores to look in; the newest pointer among them wins, and chunks come from any of them. */
  stores: BlobStore[];
  /** The database's name in the stores. */
  name: string;
  /** Chunk caches to read through before the stores (a local cache directory, other processes' caches).
   * @default {[]} */
  caches?: readonly ChunkCache[] | undefined;
  signal?: AbortSignal | undefined;
  /** Chunks fetched at once. @default {8} */
  concurrency?: number | undefined;
}

/** What {@linkcode restoreIfMissing} did. */
export type RestoreIfMissingResult =
  | {
    restored: false;
    /** `exists`: the database is there (nothing was touched); `no snapshot`: no store holds one, so the
     * replicator starts from a new database. */
    reason: "exists" | "no snapshot";
    /** Stale `-wal`, `-shm` and `-journal` files removed beside the missing database. */
    removed: string[];
    /** Stores that failed and were skipped, as messages. */
    warnings: string[];
  }
  | {
    restored: true;
    sequence: number;
    /** The image's length in bytes. */
    bytes: number;
    /** SHA-256 of the restored file, lower-case hex. */
    sha256: string;
    /** Stale `-wal`, `-shm` and `-journal` files removed beside the database before it was restored. */
    removed: string[];
    /** The store whose pointer named the snapshot. */
    store: string;
    warnings: string[];
  };

const SIDECARS = ["-wal", "-shm", "-journal"];

/**
 * Restores the database at `path` from the newest snapshot of `options.name` when `path` does not exist.
 * An existing file is never touched. When no store holds a snapshot the result says so and nothing but
 * stale journal files is removed. A store that fails is skipped when another has the snapshot; when none
 * has one and any failed, it throws (`STORE_IO` or the store's error): a new, empty database replicated
 * over a snapshot that a store could not be asked about would bury it.
 *
 * The restored file is written beside `path`, verified (every chunk and the whole image), then linked into
 * place only if `path` still does not exist, so a database created meanwhile is never replaced. The image
 * keeps its journal mode: a snapshot of a WAL database opens in WAL mode.
 *
 * @example Before starting a replicator
 * ```ts ignore
 * import { LocalStore } from "../store/local.ts";
 * import { restoreIfMissing } from "./restore_missing.ts";
 * const result = await restoreIfMissing("/srv/app.db", { stores: [new LocalStore("/backups")], name: "app" });
 * if (result.restored) console.log(`restored sequence ${result.sequence}`);
 * ```
 */
export async function restoreIfMissing(
  path: string,
  options: RestoreIfMissingOptions,
): Promise<RestoreIfMissingResult> {
  const { stores, name, signal } = options;
  if (stores.length === 0) throw new TypeError("Cannot restore a missing database: give at least one store");
  const file = resolve(path);
  if (await present(file)) return { restored: false, reason: "exists", removed: [], warnings: [] };
  const { best, warnings } = await newest(stores, name, file, signal);
  if (await present(file)) return { restored: false, reason: "exists", removed: [], warnings };
  const removed = await removeSidecars(file);
  if (!best) return { restored: false, reason: "no snapshot", removed, warnings };

  const dir = dirname(file);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new TesseraError(
      "STORE_IO",
      `Cannot restore "${file}": cannot create "${dir}": ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
  const temp = join(dir, `.${basename(file)}.tessera-restore-${randomBytes(6).toString("hex")}`);
  const { manifest } = best.loaded;
  try {
    const result = await restoreImage({
      manifest,
      chunks: readThrough(best.store, { caches: options.caches, stores, locate: storeLocator }),
      out: temp,
      concurrency: options.concurrency,
      signal,
    });
    if (!await linkNoReplace(temp, file)) {
      return { restored: false, reason: "exists", removed, warnings };
    }
    await syncDir(dir);
    return {
      restored: true,
      sequence: manifest.sequence,
      bytes: result.bytes,
      sha256: result.sha256,
      removed,
      store: best.store.description,
      warnings,
    };
  } finally {
    await unlink(temp).catch(() => {});
  }
}

async function newest(
  stores: BlobStore[],
  name: string,
  file: string,
  signal: AbortSignal | undefined,
): Promise<{ best: FoundSnapshot | undefined; warnings: string[] }> {
  const { found: best, skipped: failures } = await findSnapshot(stores, { name }, { signal });
  signal?.throwIfAborted();
  const warnings = failures.map(({ store, error }) => `skipped ${store.description}: ${errorMessage(error)}`);
  if (best || failures.length === 0) return { best, warnings };
  const first = failures[0]!;
  const what = failures.length === stores.length
    ? "no store answered"
    : `${stores.length - failures.length} of ${stores.length} stores have none, and the others failed`;
  throw new TesseraError(
    first.error instanceof TesseraError ? first.error.code : "STORE_IO",
    `Cannot tell whether a snapshot of "${name}" exists to restore "${file}": ${what} ` +
      `(${warnings.join("; ")}); fix the store or start without --restore-if-missing`,
    { cause: first.error },
  );
}

async function present(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return false;
    throw new TesseraError("STORE_IO", `Cannot look at "${path}": ${errorMessage(error)}`, { cause: error });
  }
}

async function removeSidecars(file: string): Promise<string[]> {
  const removed: string[] = [];
  for (const path of SIDECARS.map((suffix) => file + suffix)) {
    try {
      await unlink(path);
      removed.push(path);
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") continue;
      throw new TesseraError(
        "STORE_IO",
        `Cannot remove the stale "${path}" beside the missing database: ${
          errorMessage(error)
        }; SQLite would ` +
          "apply it to the restored file, so remove it by hand",
        { cause: error },
      );
    }
  }
  return removed;
}

// link() fails when the target exists, so a database created after the check is never replaced. A
// filesystem without hard links gets a last check and a rename.
async function linkNoReplace(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") {
      throw new TesseraError(
        "STORE_IO",
        `Cannot move the restored database to "${to}": ${errorMessage(error)}`,
        {
          cause: error,
        },
      );
    }
  }
  if (await present(to)) return false;
  await rename(from, to);
  return true;
}
