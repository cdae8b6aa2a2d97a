/**
 * A read-only SQLite VFS for @sqlite.org/sqlite-wasm whose pages come from snapshot images in memory.
 *
 * Each open file (one per connection) holds one image, and moves to the image its host offers only when
 * SQLite takes a shared lock from no lock: at the start of a read transaction, never inside one. The served
 * header's change counter differs per image, so SQLite drops its page cache exactly then.
 *
 * Pages come from chunks the host holds in memory. A read of a chunk it does not hold (a lazy image) fails
 * with `SQLITE_IOERR_READ` and is reported to the host: SQLite then abandons the statement, and the engine
 * fetches what was missed and runs the statement again (see `wasm.ts`). No callback ever waits.
 *
 * Every callback runs inside a wasm call: it must be synchronous and must not throw (an exception unwinds
 * through SQLite's C frames and leaves it in an undefined state), so each one catches and returns an error
 * code.
 *
 * @module
 */

import type sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import type { SnapshotImage } from "./image.ts";
import { sqliteError } from "./sqlite_error.ts";

/** The sqlite-wasm module object. */
export type Sqlite3 = Awaited<ReturnType<typeof sqlite3InitModule>>;

/** What a file opened through the VFS asks of the replica it belongs to. */
export interface VfsHost {
  /** The image a connection starting a read transaction should see. */
  imageForTransaction(): SnapshotImage;
  /** A connection now reads `image` (counted, so an image no connection uses can be let go). */
  adopt(image: SnapshotImage): void;
  /** A connection no longer reads `image`. */
  drop(image: SnapshotImage): void;
  /**
   * The bytes of chunk `index` (from 1) of `image`: `null` for an all-zero chunk, `undefined` when memory
   * does not hold it. Then the read fails (`SQLITE_IOERR_READ`, so SQLite abandons the statement) and
   * `missed` is told, so the caller can fetch the chunk and run the statement again.
   */
  chunk(image: SnapshotImage, index: number): Uint8Array | null | undefined;
  /** A read needed chunk `index` of `image`, which memory did not hold. */
  missed?(image: SnapshotImage, index: number): void;
}

/** The VFS installed in one sqlite-wasm module. */
export interface ReplicaVfs {
  readonly name: string;
  /** Makes `path` open files served by `host`, until the returned function is called. */
  register(path: string, host: VfsHost): () => void;
  /** Opens a read-only connection (`sqlite3*`) on the file registered at `path`; throws SQLite's error as a
   * `LibsqlError`, leaving nothing open. */
  open(path: string): number;
  /** Calls made and bytes read, for tests and benchmarks. */
  readonly stats: { reads: number; bytesRead: number; misses: number; swaps: number; lastError: unknown };
}

const installed = new WeakMap<object, ReplicaVfs>();

interface OpenFile {
  host: VfsHost;
  /** The image read under the lock held now; none while the file holds no lock. */
  image: SnapshotImage | undefined;
  /** The generation of the image the last transaction read (to count swaps without holding the image). */
  lastGeneration: number;
  lock: number;
}

/** Installs the replica VFS in `sqlite3` once, and returns it. */
export function replicaVfs(sqlite3: Sqlite3): ReplicaVfs {
  const existing = installed.get(sqlite3);
  if (existing) return existing;
  const vfs = install(sqlite3);
  installed.set(sqlite3, vfs);
  return vfs;
}

function install(sqlite3: Sqlite3): ReplicaVfs {
  const { capi, wasm } = sqlite3;
  const name = "tessera-replica";
  const hosts = new Map<string, VfsHost>();
  const files = new Map<number, OpenFile>();
  const stats = { reads: 0, bytesRead: 0, misses: 0, swaps: 0, lastError: undefined as unknown };

  const guard =
    <A extends unknown[]>(failure: number, fn: (...args: A) => number) => (...args: A): number => {
      try {
        return fn(...args);
      } catch (error) {
        stats.lastError = error;
        return failure;
      }
    };
  // Outside a lock SQLite only asks for the size; it then sees the image a transaction would start on.
  const imageOf = (file: OpenFile): SnapshotImage => file.image ?? file.host.imageForTransaction();
  const fileOf = (pFile: unknown): OpenFile => {
    const file = files.get(Number(pFile));
    if (!file) throw new Error("the VFS was handed a file it did not open");
    return file;
  };
  // Sets the pragma's answer (or error message): SQLite frees it with sqlite3_free.
  const answerPragma = (pArg: unknown, text: string) => {
    wasm.pokePtr(Number(pArg), wasm.allocCString(text, false));
  };

  const readInto = (
    file: OpenFile,
    image: SnapshotImage,
    pBuf: number,
    n: number,
    offset: number,
  ): number => {
    const heap = wasm.heap8u(); // fetched anew: growing wasm memory detaches older views
    const { chunkSize, size } = image;
    const end = Math.min(offset + n, size);
    let dst = pBuf;
    let missing = false;
    for (let pos = offset; pos < end;) {
      const index = Math.floor(pos / chunkSize);
      const within = pos - index * chunkSize;
      const length = Math.min(chunkSize - within, end - pos);
      const chunk = index === 0 ? image.chunk0 : file.host.chunk(image, index);
      if (chunk === undefined) {
        missing = true;
        file.host.missed?.(image, index);
      } else if (chunk === null) heap.fill(0, dst, dst + length);
      else heap.set(chunk.subarray(within, within + length), dst);
      dst += length;
      pos += length;
    }
    stats.reads++;
    if (missing) {
      stats.misses++;
      return capi.SQLITE_IOERR_READ;
    }
    if (end > offset) stats.bytesRead += end - offset;
    if (offset + n > size) {
      heap.fill(0, pBuf + Math.max(0, size - offset), pBuf + n); // SQLite wants the short tail zeroed
      return capi.SQLITE_IOERR_SHORT_READ;
    }
    return 0;
  };

  // The struct binder names members with a leading "$" at run time; the bundled typings leave it out.
  // deno-lint-ignore no-explicit-any
  const io = new capi.sqlite3_io_methods() as any;
  io.$iVersion = 1; // no shared memory (no WAL), no memory mapping
  const ioMethods = {
    xClose: guard(capi.SQLITE_IOERR_CLOSE, (pFile: number) => {
      const file = files.get(Number(pFile));
      if (file) {
        files.delete(Number(pFile));
        if (file.image) file.host.drop(file.image);
      }
      return 0;
    }),
    xRead: guard(
      capi.SQLITE_IOERR_READ,
      (pFile: number, pBuf: number, n: number, offset: number | bigint) => {
        const file = fileOf(pFile);
        return readInto(file, imageOf(file), Number(pBuf), n, Number(offset));
      },
    ),
    xWrite: guard(capi.SQLITE_READONLY, () => capi.SQLITE_READONLY),
    xTruncate: guard(capi.SQLITE_READONLY, () => capi.SQLITE_READONLY),
    xSync: guard(capi.SQLITE_READONLY, () => capi.SQLITE_READONLY),
    xFileSize: guard(capi.SQLITE_IOERR_FSTAT, (pFile: number, pSize: number) => {
      wasm.poke64(Number(pSize), BigInt(imageOf(fileOf(pFile)).size));
      return 0;
    }),
    xLock: guard(capi.SQLITE_IOERR_LOCK, (pFile: number, level: number) => {
      const file = fileOf(pFile);
      if (file.lock === capi.SQLITE_LOCK_NONE && level === capi.SQLITE_LOCK_SHARED) {
        // The start of a read transaction: the only moment a connection may move to another image.
        const next = file.host.imageForTransaction();
        file.host.adopt(next);
        if (file.image) file.host.drop(file.image);
        if (next.generation !== file.lastGeneration) stats.swaps++;
        file.image = next;
        file.lastGeneration = next.generation;
      }
      if (level > capi.SQLITE_LOCK_SHARED) return capi.SQLITE_READONLY;
      file.lock = level;
      return 0;
    }),
    xUnlock: guard(capi.SQLITE_IOERR_UNLOCK, (pFile: number, level: number) => {
      const file = fileOf(pFile);
      file.lock = level;
      if (level === capi.SQLITE_LOCK_NONE && file.image) {
        // Between transactions a connection holds no image, so an idle one keeps no old snapshot alive.
        file.host.drop(file.image);
        file.image = undefined;
      }
      return 0;
    }),
    xCheckReservedLock: guard(capi.SQLITE_IOERR_CHECKRESERVEDLOCK, (_pFile: number, pOut: number) => {
      wasm.poke32(Number(pOut), 0);
      return 0;
    }),
    xFileControl: guard(capi.SQLITE_NOTFOUND, (_pFile: number, op: number, pArg: number) => {
      if (op !== capi.SQLITE_FCNTL_PRAGMA) return capi.SQLITE_NOTFOUND;
      // pArg is char*[3]: [0] the answer we may set, [1] the pragma's name, [2] its argument or NULL.
      const ptrSize = (wasm as { ptr?: { size?: number } }).ptr?.size ?? 4;
      const pragma = String(wasm.cstrToJs(wasm.peekPtr(Number(pArg) + ptrSize))).toLowerCase();
      const pValue = wasm.peekPtr(Number(pArg) + 2 * ptrSize);
      const value = pValue ? String(wasm.cstrToJs(pValue)).trim().toLowerCase() : undefined;
      if (pragma === "journal_mode" && value !== undefined) {
        answerPragma(pArg, "attempt to write a readonly database");
        return capi.SQLITE_READONLY;
      }
      if (pragma === "locking_mode" && value !== undefined && value.startsWith("exclusive")) {
        // An exclusive lock is never released, so the connection would never move to a newer snapshot.
        answerPragma(pArg, "a Tessera replica cannot use locking_mode=EXCLUSIVE: it would never refresh");
        return capi.SQLITE_ERROR;
      }
      return capi.SQLITE_NOTFOUND;
    }),
    xSectorSize: guard(4096, () => 4096),
    // Not SQLITE_IOCAP_IMMUTABLE: an immutable file is never re-checked, and a connection must see new images.
    xDeviceCharacteristics: guard(0, () => 0),
  };

  // deno-lint-ignore no-explicit-any
  const vfs = new capi.sqlite3_vfs() as any;
  vfs.$iVersion = 2;
  // deno-lint-ignore no-explicit-any
  vfs.$szOsFile = (capi.sqlite3_file as any).structInfo.sizeof;
  vfs.$mxPathname = 1024;
  const vfsMethods = {
    xOpen: guard(
      capi.SQLITE_CANTOPEN,
      (_pVfs: number, zName: number, pFile: number, flags: number, pOut: number) => {
        // Only main databases: journals are never opened read-only, and temporary files live in memory.
        if (!(flags & capi.SQLITE_OPEN_MAIN_DB) || !zName) return capi.SQLITE_CANTOPEN;
        const host = hosts.get(String(wasm.cstrToJs(Number(zName))));
        if (!host) return capi.SQLITE_CANTOPEN;
        files.set(Number(pFile), { host, image: undefined, lastGeneration: 0, lock: capi.SQLITE_LOCK_NONE });
        wasm.pokePtr(Number(pFile), io.pointer); // sqlite3_file.pMethods is its first member
        if (pOut) wasm.poke32(Number(pOut), capi.SQLITE_OPEN_READONLY);
        return 0;
      },
    ),
    xDelete: guard(capi.SQLITE_IOERR_DELETE, () => capi.SQLITE_IOERR_DELETE),
    xAccess: guard(
      capi.SQLITE_IOERR_ACCESS,
      (_pVfs: number, _zName: number, _flags: number, pOut: number) => {
        wasm.poke32(Number(pOut), 0); // no journal or WAL ever exists beside a snapshot
        return 0;
      },
    ),
    xFullPathname: guard(capi.SQLITE_CANTOPEN, (_pVfs: number, zName: number, nOut: number, zOut: number) => {
      const n = wasm.cstrncpy(Number(zOut), Number(zName), nOut);
      return n < nOut ? 0 : capi.SQLITE_CANTOPEN;
    }),
    xRandomness: guard(0, (_pVfs: number, n: number, pOut: number) => {
      crypto.getRandomValues(wasm.heap8u().subarray(Number(pOut), Number(pOut) + n));
      return n;
    }),
    xSleep: guard(0, (_pVfs: number, microseconds: number) => microseconds),
    xCurrentTime: guard(capi.SQLITE_ERROR, (_pVfs: number, pOut: number) => {
      wasm.poke(Number(pOut), 2440587.5 + Date.now() / 86400000, "double");
      return 0;
    }),
    xCurrentTimeInt64: guard(capi.SQLITE_ERROR, (_pVfs: number, pOut: number) => {
      wasm.poke64(Number(pOut), BigInt(Date.now()) + 210866760000000n);
      return 0;
    }),
  };

  // The methods take pointers as numbers; the typings want their own pointer type.
  type Install = Parameters<typeof sqlite3.vfs.installVfs>[0];
  sqlite3.vfs.installVfs({
    io: { struct: io, methods: ioMethods as unknown as NonNullable<Install["io"]>["methods"] },
    vfs: { struct: vfs, methods: vfsMethods as unknown as NonNullable<Install["vfs"]>["methods"], name },
  } as Install);

  return {
    name,
    stats,
    open(path: string): number {
      const stack = wasm.pstack.pointer;
      try {
        const ppDb = wasm.pstack.allocPtr() as number;
        const rc = capi.sqlite3_open_v2(path, ppDb, capi.SQLITE_OPEN_READONLY, name);
        const db = wasm.peekPtr(ppDb) as number;
        if (rc !== 0) {
          const error = sqliteError(sqlite3, db, rc);
          if (db) capi.sqlite3_close_v2(db);
          throw error;
        }
        return db;
      } finally {
        wasm.pstack.restore(stack);
      }
    },
    register(path: string, host: VfsHost) {
      if (hosts.has(path)) throw new Error(`a replica is already registered at ${path}`);
      hosts.set(path, host);
      return () => {
        if (hosts.get(path) === host) hosts.delete(path);
      };
    },
  };
}
