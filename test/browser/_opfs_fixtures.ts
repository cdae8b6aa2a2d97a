/**
 * What the browser side of `opfs_cache_test.ts` builds its cases from: test directories in the origin
 * private file system, caches in them, handles that fail the way browsers do (a full quota, a directory
 * deleted), another tab's lock, and file checks.
 *
 * @module
 */

import { CHUNK_HEADER_LENGTH } from "../../src/chunk/codec.ts";
import { idToHex } from "../../src/chunk/ids.ts";
import { OpfsChunkCache, type OpfsDirectoryHandle, type OpfsFileHandle } from "../../src/chunk/opfs_cache.ts";
import { type CacheSuiteTarget, check } from "../chunk/_cache_suite.ts";

export const SIZE = 1024;
export const ID_FILE = /^[0-9a-f]{64}$/;
export const opfsRoot = () =>
  (globalThis as unknown as { navigator: { storage: { getDirectory(): Promise<OpfsDirectoryHandle> } } })
    .navigator.storage.getDirectory();
export interface Locks {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}
export const locks = () => (globalThis as unknown as { navigator: { locks: Locks } }).navigator.locks;
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The directory every test location is made in. */
export async function testRoot(): Promise<OpfsDirectoryHandle> {
  return await (await opfsRoot()).getDirectoryHandle("tessera-tests", { create: true });
}

let made = 0;
export async function newLocation(): Promise<string> {
  return `cache-${Date.now().toString(36)}-${++made}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function locationDir(location: string): Promise<OpfsDirectoryHandle> {
  return await (await testRoot()).getDirectoryHandle(location, { create: true });
}

export async function writeRaw(dir: OpfsDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await writable.write(bytes);
  await writable.close();
}

export async function fileText(dir: OpfsDirectoryHandle, name: string): Promise<string> {
  const bytes = new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer());
  return bytes.join();
}

export async function heldIn(dir: OpfsDirectoryHandle): Promise<{ ids: string[]; bytes: number }> {
  const ids: string[] = [];
  let bytes = 0;
  for await (const name of dir.keys()) {
    if (!ID_FILE.test(name)) continue;
    const size = await dir.getFileHandle(name).then((f) => f.getFile()).then((f) => f.size, () => undefined);
    if (size === undefined) continue;
    ids.push(name);
    bytes += size;
  }
  return { ids: ids.sort(), bytes };
}

export const roomBytes = (chunks: number, chunkSize = SIZE) => chunks * (chunkSize + CHUNK_HEADER_LENGTH);

export const opfsTarget: CacheSuiteTarget = {
  location: newLocation,
  open: async (location, room) =>
    new OpfsChunkCache({
      root: await testRoot(),
      directory: location,
      capacityBytes: roomBytes(room.chunks, room.chunkSize),
    }),
  damage: async (location, id, bytes) => await writeRaw(await locationDir(location), idToHex(id), bytes),
  remove: async (location, id) => await (await locationDir(location)).removeEntry(idToHex(id)),
  held: async (location) => await heldIn(await locationDir(location)),
  badOptions: [
    { what: "an empty directory", make: () => new OpfsChunkCache({ directory: "" }), error: TypeError },
    { what: "a directory path", make: () => new OpfsChunkCache({ directory: "a/b" }), error: TypeError },
    { what: 'the directory ".."', make: () => new OpfsChunkCache({ directory: ".." }), error: TypeError },
    { what: "a capacity of 0", make: () => new OpfsChunkCache({ capacityBytes: 0 }), error: RangeError },
    { what: "a negative capacity", make: () => new OpfsChunkCache({ capacityBytes: -5 }), error: RangeError },
    {
      what: "a fractional capacity",
      make: () => new OpfsChunkCache({ capacityBytes: 1.5 }),
      error: RangeError,
    },
    {
      what: "a root that is no directory",
      make: () => new OpfsChunkCache({ root: {} as OpfsDirectoryHandle }),
      error: TypeError,
    },
    { what: "null options", make: () => new OpfsChunkCache(null as never), error: TypeError },
  ],
};

export async function opfsCache(
  location: string,
  chunks: number,
  root?: OpfsDirectoryHandle,
  chunkSize = SIZE,
): Promise<OpfsChunkCache> {
  return new OpfsChunkCache({
    root: root ?? await testRoot(),
    directory: location,
    capacityBytes: roomBytes(chunks, chunkSize),
  });
}

/** What {@linkcode wrapRoot} changes of the handles it wraps. */
export interface Wrapping {
  /** The file handle the cache gets for `name`. */
  file?(name: string, handle: OpfsFileHandle): OpfsFileHandle;
  /** Called on each listing of a directory. */
  listed?(): void;
}

/** `real` and every handle got through it, with the changes of `wrapping`. */
export function wrapRoot(real: OpfsDirectoryHandle, wrapping: Wrapping): OpfsDirectoryHandle {
  const dir = (handle: OpfsDirectoryHandle): OpfsDirectoryHandle => ({
    name: handle.name,
    getDirectoryHandle: async (name, options) => dir(await handle.getDirectoryHandle(name, options)),
    getFileHandle: async (name, options) => {
      const got = await handle.getFileHandle(name, options);
      return wrapping.file ? wrapping.file(name, got) : got;
    },
    removeEntry: (name) => handle.removeEntry(name),
    keys: () => {
      wrapping.listed?.();
      return handle.keys();
    },
  });
  return dir(real);
}

/** Writes the quota refuses next, counted down as they are refused. */
export interface Refusals {
  /** Writes of chunk files. */
  chunks: number;
  /** Writes of the index file. */
  index: number;
  /** Opening any file for writing (`createWritable`). */
  opens: number;
}

/**
 * `real`, but writes fail as a full disk's would, as `refusals` says. As chromium's does, a writer's
 * `abort()` resolves before the browser lets go of the file (a moment later), so a file deleted at once
 * is still held.
 */
export function quotaRoot(real: OpfsDirectoryHandle, refusals: Partial<Refusals>): OpfsDirectoryHandle {
  const refuse = (what: keyof Refusals) => {
    if ((refusals[what] ?? 0) <= 0) return;
    refusals[what]!--;
    throw new DOMException("The origin's quota is used up", "QuotaExceededError");
  };
  return wrapRoot(real, {
    file: (name, handle) => ({
      getFile: () => handle.getFile(),
      async createWritable() {
        refuse("opens");
        const writable = await handle.createWritable();
        return {
          async write(data) {
            refuse(ID_FILE.test(name) ? "chunks" : "index");
            await writable.write(data);
          },
          close: () => writable.close(),
          abort: (reason) => {
            setTimeout(() => void writable.abort(reason).catch(() => {}), 50);
            return Promise.resolve();
          },
        };
      },
    }),
  });
}

/** Holds `cache`'s lock, as another tab would, until `release()`. */
export async function holdLock(lockName: string): Promise<{ release(): Promise<void> }> {
  let release = () => {};
  let granted = () => {};
  const got = new Promise<void>((resolve) => (granted = resolve));
  const held = locks().request(lockName, () => {
    granted();
    return new Promise<void>((resolve) => (release = resolve));
  });
  await got;
  return {
    release: async () => {
      release();
      await held;
    },
  };
}

export async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await condition()); waited += 50) {
    check(waited < 20_000, `${what} did not happen within 20 s`);
    await sleep(50);
  }
}

export async function hasFile(location: string, id: Uint8Array): Promise<boolean> {
  return (await heldIn(await locationDir(location))).ids.includes(idToHex(id));
}
