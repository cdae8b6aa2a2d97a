/**
 * Temporary directories for tests, created under the system temporary directory.
 *
 * @module
 */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Creates a new, empty directory named `tessera-<prefix>-<random>` under `os.tmpdir()`.
 *
 * @param prefix A short word naming what the directory is for; it must not contain a path separator.
 * @returns The absolute path of the new directory.
 *
 * @example Create and remove a directory
 * ```ts
 * import { makeTempDir, removeDir } from "./temp.ts";
 *
 * const dir = await makeTempDir("restore");
 * await removeDir(dir);
 * ```
 */
export async function makeTempDir(prefix: string): Promise<string> {
  if (/[\\/]/.test(prefix)) {
    throw new TypeError(`Cannot make a temporary directory: prefix "${prefix}" contains a path separator`);
  }
  return await mkdtemp(join(tmpdir(), `tessera-${prefix}-`));
}

/**
 * Removes a directory and everything in it; a missing directory is not an error.
 *
 * @param path The directory to remove.
 *
 * @example Remove a directory that may not exist
 * ```ts
 * import { removeDir } from "./temp.ts";
 *
 * await removeDir("/tmp/tessera-does-not-exist");
 * ```
 */
export async function removeDir(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 3 });
}
