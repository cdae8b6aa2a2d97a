/**
 * A manifest copied out of a store into a file, as `tessera restore --manifest FILE` reads it. Kept apart
 * from the catalogue: it reads the filesystem, which the browser entry point has not.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { TesseraError } from "../errors.ts";
import type { LoadedManifest } from "./catalog.ts";
import { decodeManifest } from "./codec.ts";

/**
 * Loads a manifest from a file, checked as one read from a store is (envelope hash, fields).
 *
 * @example Loading a copied manifest
 * ```ts
 * import { loadManifestFile } from "./manifest_file.ts";
 *
 * await loadManifestFile("/nonexistent/manifest").catch((error) => console.log(error.code)); // NOT_FOUND
 * ```
 */
export async function loadManifestFile(path: string): Promise<LoadedManifest> {
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = new Uint8Array(await readFile(path));
  } catch (error) {
    const code = (error as { code?: string } | null)?.code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new TesseraError("NOT_FOUND", `Cannot read manifest file "${path}": it does not exist`, {
        cause: error,
      });
    }
    throw new TesseraError("STORE_IO", `Cannot read manifest file "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  const manifest = await decodeManifest(manifestBytes, { what: path });
  return { manifest, manifestBytes, key: path };
}
