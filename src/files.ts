/**
 * Writing a user's file without ever leaving it half written, and making a directory's entries durable.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`);
  try {
    const handle = await open(temp, "wx");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/** Options of {@linkcode syncDir}. */
export interface SyncDirOptions {
  /**
   * Throw when the directory cannot be opened for a reason other than being gone (a durable store must not
   * report a write it could not make durable); otherwise the sync is skipped.
   * @default {false}
   */
  strict?: boolean;
}

/**
 * Syncs the directory `path`, so a rename, link or unlink in it survives a crash. A filesystem that cannot
 * sync a directory is not an error (the change itself has happened), nor is a directory that is gone (a
 * concurrent delete removed it with its last entry, so nothing is left to make durable).
 *
 * @example After renaming a file into place
 * ```ts
 * import { syncDir } from "./files.ts";
 * await syncDir("/tmp");
 * ```
 */
export async function syncDir(path: string, options: SyncDirOptions = {}): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if (!options.strict || isMissing(error)) return;
    throw error;
  }
  try {
    await handle.sync();
  } catch {
    // Some filesystems cannot sync a directory; the change itself is in place.
  } finally {
    await handle.close().catch(() => {});
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
