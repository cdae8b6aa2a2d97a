/**
 * An `OpfsChunkCache`'s directory as one cache sees it, and the one change every write makes under the
 * cache's lock: evict to fit, write the index, then the chunk files. Private to the OPFS cache.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import {
  describeError,
  fileSize,
  isNamed,
  type OpfsDirectoryHandle,
  removeFile,
  writeFiles,
} from "./_opfs_files.ts";
import {
  evict,
  type Index,
  INDEX_FILE,
  indexFileSize,
  type IndexMark,
  indexUnchanged,
  readIndex,
  recheck,
  scan,
  writeIndex,
} from "./_opfs_index.ts";

/** How an {@linkcode IndexedDirectory} reports files it evicted or found damaged, and failures. */
export interface DirectoryReport {
  evicted(count: number): void;
  damaged(count: number): void;
  note(message: string): void;
}

/** A chunk to write: the file's name (the id in hex) and its bytes. */
export interface ChunkWrite {
  name: string;
  object: Uint8Array;
}

/** One change: chunks to keep, chunks read since the last change (in order), damaged files deleted. */
export interface Change<T extends ChunkWrite> {
  batch: readonly T[];
  touched: readonly string[];
  forgotten: readonly string[];
}

const QUOTA_HINT = ": the origin's storage is full even after evicting the least recently used chunks " +
  "(free other site data, or lower capacityBytes)";

/**
 * A cache's directory as one cache sees it: the index it last wrote, kept in memory while no other cache
 * changes the file, whether it has scanned the directory, and the files failed writes left. Its methods
 * run under the cache's lock.
 */
export class IndexedDirectory {
  /** The directory's handle, for reads (which take no lock). */
  readonly handle: OpfsDirectoryHandle;
  readonly #description: string;
  readonly #capacityBytes: number;
  readonly #report: DirectoryReport;
  #scanned = false;
  /** The index as this cache last wrote or read it, and the file's mark then; unset during a change. */
  #index: Index | undefined;
  #mark: IndexMark | undefined;
  /** Chunk files a failed write left, still to delete. */
  readonly #leftovers = new Set<string>();

  constructor(
    handle: OpfsDirectoryHandle,
    options: { description: string; capacityBytes: number; report: DirectoryReport },
  ) {
    this.handle = handle;
    this.#description = options.description;
    this.#capacityBytes = options.capacityBytes;
    this.#report = options.report;
  }

  /** The index as the file has it now (not scanned). */
  async index(): Promise<Index> {
    if (this.#index && this.#mark && await indexUnchanged(this.handle, this.#mark)) return this.#index;
    return (await readIndex(this.handle)).index;
  }

  /**
   * Applies a change: records the uses, forgets damaged files still missing or damaged, makes room and
   * writes the batch; answers the names of the batch's chunks kept. Throws a `TesseraError` when the index
   * cannot be written (nothing of the batch is kept then).
   */
  async change<T extends ChunkWrite>(change: Change<T>): Promise<Set<string>> {
    const dir = this.handle;
    const { index, rewrite } = await this.#load();
    const before = index.changes;
    for (const name of [...this.#leftovers]) {
      // Listed again: another cache has written the chunk since.
      if (index.get(name) !== undefined || await removeFile(dir, name)) this.#leftovers.delete(name);
    }
    for (const name of change.forgotten) await recheck(dir, index, name);
    for (const name of change.touched) index.touch(name);
    const kept = new Set<string>();
    const writes: T[] = [];
    for (const w of change.batch) {
      const held = index.get(w.name);
      // Another tab wrote it meanwhile: a use, not a write.
      if (held === w.object.length && (await fileSize(dir, w.name)) === held) {
        index.touch(w.name);
        kept.add(w.name);
      } else {
        index.delete(w.name);
        writes.push(w);
      }
    }
    let incoming = sizeOf(writes);
    while (incoming > this.#capacityBytes) incoming -= writes.shift()!.object.length;
    await this.#evict(index, index.total + incoming - this.#capacityBytes);
    for (const w of writes) index.add(w.name, w.object.length);
    const writing = new Set(writes.map((w) => w.name));
    // The index counts the files before they exist, so the files never hold more than it says.
    let mark = this.#mark;
    if (rewrite || index.changes !== before) mark = await this.#writeIndex(index, incoming, writing);
    const written = index.changes;
    let failed = await writeFiles(dir, writes);
    const refused = failed.filter(([, error]) => isNamed(error, "QuotaExceededError")).map(([w]) => w);
    if (refused.length > 0) {
      await this.#evict(index, sizeOf(refused), writing);
      failed = [...failed.filter(([w]) => !refused.includes(w)), ...await writeFiles(dir, refused)];
    }
    for (const [w, error] of failed) {
      const full = isNamed(error, "QuotaExceededError") ? QUOTA_HINT : "";
      this.#report.note(
        `Cannot write chunk ${w.name} to ${this.#description}: ${describeError(error)}${full}; ` +
          "the chunk was not cached",
      );
      index.delete(w.name);
      // Left, the empty file would be counted by no index; a later change tries again.
      if (!await removeFile(dir, w.name)) this.#leftovers.add(w.name);
    }
    for (const w of writes) if (!failed.some(([f]) => f === w)) kept.add(w.name);
    if (index.changes !== written) {
      try {
        mark = await this.#writeIndex(index, 0, new Set());
      } catch (error) {
        // The index on disk still counts the files that failed: more than there are, which is safe.
        this.#report.note((error as Error).message);
        return kept;
      }
    }
    this.#index = index;
    this.#mark = mark;
    return kept;
  }

  // The index to change: the one this cache wrote last when no other has changed the file since, else the
  // file's (with the directory scanned when it is damaged, or this cache has not scanned it yet).
  async #load(): Promise<{ index: Index; rewrite: boolean }> {
    const cached = this.#index;
    // Until this change is written whole, the copy in memory may differ from the file.
    this.#index = undefined;
    if (cached && this.#mark && await indexUnchanged(this.handle, this.#mark)) {
      return { index: cached, rewrite: false };
    }
    const { index, mark, problem } = await readIndex(this.handle);
    this.#mark = mark;
    if (problem !== undefined && problem !== "missing") {
      this.#report.note(
        `The index of ${this.#description} (${INDEX_FILE}) failed its check: ${problem}; ` +
          "rebuilt it from the directory",
      );
    }
    if (problem === undefined && this.#scanned) return { index, rewrite: false };
    this.#report.damaged(await scan(this.handle, index));
    this.#scanned = true;
    return { index, rewrite: true };
  }

  // Writes the index; when the quota refuses it, evicts room for its copy and `incoming` more, once.
  async #writeIndex(index: Index, incoming: number, keep: ReadonlySet<string>): Promise<IndexMark> {
    try {
      return await writeIndex(this.handle, index);
    } catch (error) {
      if (!isNamed(error, "QuotaExceededError")) throw this.#indexError(error);
    }
    await this.#evict(index, indexFileSize(index.size) + incoming, keep);
    try {
      return await writeIndex(this.handle, index);
    } catch (error) {
      throw this.#indexError(error);
    }
  }

  #indexError(error: unknown): TesseraError {
    const full = isNamed(error, "QuotaExceededError") ? QUOTA_HINT : "";
    return new TesseraError(
      "STORE_IO",
      `Cannot write the index of ${this.#description} (${INDEX_FILE}): ${describeError(error)}${full}`,
      { cause: error },
    );
  }

  async #evict(index: Index, bytes: number, keep?: ReadonlySet<string>): Promise<void> {
    this.#report.evicted(await evict(this.handle, index, { bytes, keep }));
  }
}

const sizeOf = (writes: readonly ChunkWrite[]) => writes.reduce((sum, w) => sum + w.object.length, 0);
