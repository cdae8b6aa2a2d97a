/**
 * The file operations of `OpfsChunkCache` on its directory: the handle types it uses, reading, writing and
 * deleting whole files, and the names of the errors browsers throw. Private to the OPFS cache.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";

/** The parts of a `FileSystemDirectoryHandle` the cache uses; a real one has them all. */
export interface OpfsDirectoryHandle {
  readonly name: string;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectoryHandle>;
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

/** The parts of a `File` the cache uses. */
export interface OpfsFile {
  readonly size: number;
  readonly lastModified: number;
  arrayBuffer(): Promise<ArrayBuffer>;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/** The parts of a `FileSystemFileHandle` the cache uses. */
export interface OpfsFileHandle {
  getFile(): Promise<OpfsFile>;
  createWritable(): Promise<OpfsWritable>;
}

/** The parts of a `FileSystemWritableFileStream` the cache uses. */
export interface OpfsWritable {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}

/** A chunk file's bytes; `undefined` when it is missing, empty (being written) or replaced while read. */
export async function readChunkFile(dir: OpfsDirectoryHandle, name: string): Promise<Uint8Array | undefined> {
  try {
    const file = await (await dir.getFileHandle(name)).getFile();
    // Empty while it is first written: the browser fills it when the writer closes.
    if (file.size === 0) return undefined;
    return new Uint8Array(await file.arrayBuffer());
  } catch (error) {
    // Evicted by another tab, or replaced while read.
    if (isNamed(error, "NotFoundError", "NotReadableError")) return undefined;
    throw error;
  }
}

/** A file's size; `undefined` when it cannot be read. */
export async function fileSize(dir: OpfsDirectoryHandle, name: string): Promise<number | undefined> {
  try {
    return (await (await dir.getFileHandle(name)).getFile()).size;
  } catch {
    return undefined;
  }
}

/** Writes each file at once; answers the ones that failed, with their errors. */
export async function writeFiles<T extends { name: string; object: Uint8Array }>(
  dir: OpfsDirectoryHandle,
  writes: readonly T[],
): Promise<[T, unknown][]> {
  const results = await Promise.all(writes.map(async (w): Promise<[T, unknown] | undefined> => {
    try {
      await writeFile(dir, w.name, w.object);
      return undefined;
    } catch (error) {
      return [w, error];
    }
  }));
  return results.filter((r) => r !== undefined);
}

/** Writes a whole file: the browser writes a copy beside it and swaps it in when it is closed. */
export async function writeFile(dir: OpfsDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
  try {
    await writable.write(bytes);
  } catch (error) {
    await writable.abort().catch(() => {});
    throw error;
  }
  await writable.close();
}

/** How many times {@linkcode removeFile} tries a file still held, waiting twice as long each time. */
const REMOVE_TRIES = 8;

/**
 * Deletes a file; true once it is gone. A file whose writer was just aborted stays locked until the
 * browser has processed the abort, which `abort()` does not wait for (chromium answers
 * `NoModificationAllowedError` meanwhile): it is tried again, 10 ms later, then 20 ms, ... (1.3 s in all).
 */
export async function removeFile(dir: OpfsDirectoryHandle, name: string): Promise<boolean> {
  for (let tried = 1;; tried++) {
    try {
      await dir.removeEntry(name);
      return true;
    } catch (error) {
      if (isNamed(error, "NotFoundError")) return true;
      if (
        !isNamed(error, "NoModificationAllowedError", "InvalidModificationError") || tried >= REMOVE_TRIES
      ) {
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** (tried - 1)));
    }
  }
}

/** True when `error` is a `DOMException` (or anything) with one of `names`. */
export function isNamed(error: unknown, ...names: string[]): boolean {
  return names.includes((error as { name?: unknown } | null)?.name as string);
}

/** `error` as a message that names its kind (`QuotaExceededError: ...`). */
export function describeError(error: unknown): string {
  const name = (error as { name?: unknown } | null)?.name;
  const message = errorMessage(error);
  return typeof name === "string" && name !== "Error" && !message.startsWith(name)
    ? `${name}: ${message}`
    : message;
}
