/**
 * A store in a local directory, the embedded default: `file:` targets need no server, and the directory
 * can live on a mounted shared filesystem. Objects are plain files at their key's path, so a static web
 * server in front of the directory serves the same layout to {@linkcode HttpStore} readers.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { type FileHandle, link, mkdir, open, readdir, rename, rmdir, stat, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { errorMessage, TesseraError } from "../errors.ts";
import { syncDir } from "../files.ts";
import { checkKey, checkPrefix, compareKeys, RESERVED_SEGMENT_PREFIX } from "./keys.ts";
import { checkRange, rangeBounds } from "../net/range.ts";
import type {
  BlobInfo,
  BlobStore,
  GetOptions,
  GetResult,
  HeadResult,
  ListItem,
  ListOptions,
  PutOptions,
  StoreCallOptions,
} from "./types.ts";

/** Where temporary files are written before they are renamed into place; never listed. */
const TEMP_DIR = `${RESERVED_SEGMENT_PREFIX}tmp`;

/** Options of {@linkcode LocalStore}. */
export interface LocalStoreOptions {
  /** fsync each file and its directory before a put returns, so a crash never loses a written object.
   * @default {true} */
  durable?: boolean;
}

/**
 * A {@linkcode BlobStore} in a directory. Writes go to a temporary file that is synced and renamed into
 * place; keys are checked so that no key can reach outside the directory.
 *
 * @example
 * ```ts
 * import { LocalStore } from "./local.ts";
 * const store = new LocalStore("/tmp/tessera-example");
 * await store.put("greeting", new TextEncoder().encode("hello"));
 * console.log((await store.head("greeting")).status); // ok
 * ```
 */
export class LocalStore implements BlobStore {
  /** The directory's absolute path. */
  readonly root: string;
  readonly description: string;
  readonly capabilities = Object.freeze({ write: true, list: true, conditionalPut: true });
  readonly #durable: boolean;

  constructor(root: string, options: LocalStoreOptions = {}) {
    if (typeof root !== "string" || root === "") {
      throw new TypeError("Cannot open a local store: expected a directory path");
    }
    this.root = resolve(root);
    this.description = `file://${this.root}`;
    this.#durable = options.durable ?? true;
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    options.signal?.throwIfAborted();
    checkRange(options.range);
    const path = this.#path(key);
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      if (isMissing(error)) return { status: "not_found" };
      throw this.#ioError("read", key, error);
    }
    try {
      const stats = await handle.stat({ bigint: true });
      if (!stats.isFile()) return { status: "not_found" };
      const info = toInfo(key, stats);
      if (options.ifNoneMatch === info.etag) return { status: "not_modified", etag: info.etag };
      const [start, end] = rangeBounds(options.range, info.size);
      const body = new Uint8Array(end - start);
      let done = 0;
      while (done < body.length) {
        options.signal?.throwIfAborted();
        const { bytesRead } = await handle.read(body, done, body.length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return { status: "ok", body: done === body.length ? body : body.subarray(0, done), ...info };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (isMissing(error)) return { status: "not_found" };
      throw this.#ioError("read", key, error);
    } finally {
      await handle.close();
    }
  }

  async head(key: string, options: StoreCallOptions = {}): Promise<HeadResult> {
    options.signal?.throwIfAborted();
    const path = this.#path(key);
    try {
      const stats = await stat(path, { bigint: true });
      if (!stats.isFile()) return { status: "not_found" };
      return { status: "ok", ...toInfo(key, stats) };
    } catch (error) {
      if (isMissing(error)) return { status: "not_found" };
      throw this.#ioError("stat", key, error);
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    const { signal } = options;
    signal?.throwIfAborted();
    const path = this.#path(key);
    const tempDir = join(this.root, TEMP_DIR);
    const temp = join(tempDir, randomUUID());
    try {
      await mkdir(tempDir, { recursive: true });
      const handle = await open(temp, "wx");
      let stats: BigStats;
      try {
        await handle.writeFile(body);
        if (this.#durable) await handle.sync();
        // The etag comes from the file before it lands (a rename keeps its inode and mtime): a concurrent
        // delete (tessera gc) may remove it the moment it is in place.
        stats = await handle.stat({ bigint: true });
      } finally {
        await handle.close();
      }
      signal?.throwIfAborted();
      await this.#publish(temp, path, key, options.ifNoneMatch === "*");
      if (this.#durable) await syncDir(join(path, ".."), { strict: true });
      return { etag: toInfo(key, stats).etag };
    } catch (error) {
      await unlink(temp).catch(() => {});
      if (signal?.aborted) throw signal.reason;
      if (error instanceof TesseraError) throw error;
      throw this.#ioError("write", key, error);
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListItem> {
    const { signal } = options;
    signal?.throwIfAborted();
    checkPrefix(prefix);
    const cut = prefix.lastIndexOf("/");
    const dirKey = cut === -1 ? "" : prefix.slice(0, cut + 1);
    yield* this.#walk(dirKey, prefix.slice(dirKey.length), options.delimiter, signal);
  }

  async delete(key: string, options: StoreCallOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    const path = this.#path(key);
    try {
      await unlink(path);
    } catch (error) {
      if (isMissing(error) || (error as { code?: string }).code === "EISDIR") return;
      throw this.#ioError("delete", key, error);
    }
    // Leave no empty folders behind, so listings with a delimiter show no prefix that holds nothing.
    let dir = join(path, "..");
    while (dir.startsWith(this.root + "/") && dir !== this.root) {
      try {
        await rmdir(dir);
      } catch {
        break;
      }
      dir = join(dir, "..");
    }
  }

  // Walks a folder in key order. A folder's name sorts as "name/", which puts it where its keys belong
  // among its siblings' keys ("a-b" < "a/x" < "a0").
  async *#walk(
    dirKey: string,
    namePrefix: string,
    delimiter: "/" | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ListItem> {
    signal?.throwIfAborted();
    let entries;
    try {
      entries = await readdir(join(this.root, dirKey), { withFileTypes: true });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (isMissing(error) || code === "ENOTDIR") return;
      throw this.#ioError("list", dirKey, error);
    }
    const named = entries
      .filter((e) => e.name.startsWith(namePrefix) && !e.name.startsWith(RESERVED_SEGMENT_PREFIX))
      .map((e) => ({ entry: e, sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const { entry } of named) {
      const key = dirKey + entry.name;
      if (entry.isDirectory()) {
        if (delimiter) {
          if (await this.#holdsObject(`${key}/`)) yield { type: "prefix", prefix: `${key}/` };
        } else {
          yield* this.#walk(`${key}/`, "", undefined, signal);
        }
      } else if (entry.isFile()) {
        try {
          const stats = await stat(join(this.root, key), { bigint: true });
          yield { type: "object", ...toInfo(key, stats) };
        } catch (error) {
          if (!isMissing(error)) throw this.#ioError("list", key, error);
        }
      }
    }
  }

  async #holdsObject(dirKey: string): Promise<boolean> {
    for await (const _ of this.#walk(dirKey, "", undefined, undefined)) return true;
    return false;
  }

  async #publish(temp: string, path: string, key: string, createOnly: boolean): Promise<void> {
    // A concurrent delete may remove the parent folder between mkdir and rename: try again then.
    for (let attempt = 0;; attempt++) {
      try {
        await mkdir(join(path, ".."), { recursive: true }).catch(async (error) => {
          // Deno's recursive mkdir says EEXIST when another put creates the folder at the same moment (a
          // delete had just removed it): the folder is there, which is all a put needs.
          if ((error as { code?: string }).code !== "EEXIST") throw error;
          const folder = await stat(join(path, "..")).catch(() => undefined);
          // Gone again (a delete removed it after the other put made it): the loop tries once more.
          if (!folder) {
            throw Object.assign(new Error(`folder of "${key}" removed concurrently`), { code: "ENOENT" });
          }
          if (!folder.isDirectory()) throw error;
        });
        if (createOnly) {
          await link(temp, path);
          await unlink(temp);
        } else {
          await rename(temp, path);
        }
        return;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === "EEXIST" && createOnly) {
          throw new TesseraError(
            "PRECONDITION_FAILED",
            `Cannot create "${key}" in ${this.description}: it exists`,
          );
        }
        if (code === "ENOTDIR" || code === "EISDIR" || (code === "EEXIST" && !createOnly)) {
          throw new TesseraError(
            "KEY_CONFLICT",
            `Cannot write "${key}" in ${this.description}: a key is used both as an object and as a folder ` +
              `of other objects, which a directory cannot hold`,
            { cause: error },
          );
        }
        if (code !== "ENOENT" || attempt >= 5) throw error;
      }
    }
  }

  #path(key: string): string {
    checkKey(key);
    return join(this.root, ...key.split("/"));
  }

  #ioError(action: string, key: string, error: unknown): TesseraError {
    const reason = errorMessage(error);
    return new TesseraError("STORE_IO", `Cannot ${action} "${key}" in ${this.description}: ${reason}`, {
      cause: error,
    });
  }
}

interface BigStats {
  ino: bigint;
  size: bigint;
  mtimeMs: bigint;
}

// The inode changes with every put (each put renames a new file into place); size and mtime cover an
// in-place edit by another program. Milliseconds, because that is all Deno's node:fs reports, and a store
// shared by Deno and Bun processes must give one object one ETag.
function toInfo(key: string, stats: BigStats): BlobInfo {
  const etag = `"${stats.ino.toString(36)}-${stats.size.toString(36)}-${stats.mtimeMs.toString(36)}"`;
  return { key, size: Number(stats.size), etag, lastModified: new Date(Number(stats.mtimeMs)) };
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
