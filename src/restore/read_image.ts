/**
 * Reading a database image from a manifest: the one reader behind `restoreImage`, both replica engines and
 * directory snapshot verification. It expands the chunk list, checks it against the manifest's image digest
 * (format 2), cuts it into runs (neighbours in one pack, read with one ranged GET; a chunk kept as its own
 * object alone), skips what the caller already holds, fetches the rest with a bounded number of runs in
 * flight (a chunk repeated while in flight is fetched once), checks each chunk's length against the image's
 * layout, and hands every chunk to the caller's sink. Chunk sources check every chunk against its id
 * (`src/chunk/source.ts`); the reader hashes the whole image, in order, when the caller gives it a hasher, and
 * checks the manifest's SHA-256 when it holds one.
 *
 * Web APIs only: a caller on a runtime with an incremental SHA-256 (`node:crypto`) passes it in.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { type ChunkId, idsEqual, idToHex, ZERO_ID } from "../chunk/ids.ts";
import { ChunkRequestError, type ChunkSource, getChunks } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import { type IndexCache, type LocatedList, manifestChunkList } from "../manifest/chunk_list.ts";
import { imageDigest } from "../manifest/digest.ts";
import type { ChunkLocation, Manifest } from "../manifest/types.ts";
import { forEachLimit } from "../pool.ts";
import { AdaptiveWidth } from "./_adaptive.ts";
import { Sequencer } from "./_sequencer.ts";

/** One chunk of the image, as handed to {@linkcode ReadImageOptions.sink}. */
export interface ImageChunk {
  /** Its position: 0 for the chunk the manifest holds, then 1 .. n-1. */
  index: number;
  /** Where it goes in the image: `index * chunkSize`. */
  offset: number;
  /** Its id as the manifest lists it; `undefined` for chunk 0. */
  id: ChunkId | undefined;
  /** Its bytes, shared with others (zero chunks share one buffer): never modify them. */
  bytes: Uint8Array;
  /** Where the bytes came from: the manifest (chunk 0), zeros by construction, the caller's `have`, or the
   * chunk source. */
  from: "manifest" | "zero" | "have" | "fetched";
}

/**
 * What the caller already has of a chunk: `true` when the sink holds it in place (it is skipped: not
 * fetched, not handed over, not hashed), its bytes when the caller can read them without the chunk source
 * (handed over, not fetched; the caller vouches that they match the id), nothing to fetch it.
 */
export type HaveResult = boolean | Uint8Array | undefined;

/** An incremental SHA-256, such as `node:crypto`'s `createHash("sha256")`. */
export interface ImageHash {
  update(bytes: Uint8Array): unknown;
  digest(encoding: "hex"): string;
}

/** A check {@linkcode readImage} made that failed, for {@linkcode ReadImageOptions.describe}. */
export type ReadProblem =
  /** The chunk source lacks chunk `index` (`NOT_FOUND`). */
  | { kind: "missing"; index: number; id: ChunkId; where: ChunkLocation | undefined; source: string }
  /** Chunk `index` is not the length the image's layout gives it (`CORRUPT_MANIFEST`). */
  | { kind: "length"; index: number; id: ChunkId; length: number; expected: number }
  /** The chunk source failed to read chunk `index` (the error's code: `CHECKSUM_MISMATCH`, ...). */
  | { kind: "unreadable"; index: number; id: ChunkId; where: ChunkLocation | undefined; error: TesseraError }
  /** The image's SHA-256 is not the manifest's (`CHECKSUM_MISMATCH`); both lower-case hex. */
  | { kind: "image"; sha256: string; expected: string }
  /** The image digest of the chunk list read is not the manifest's (`CHECKSUM_MISMATCH`); lower-case hex. */
  | { kind: "digest"; digest: string; expected: string };

/** Options of {@linkcode readImage}. */
export interface ReadImageOptions {
  /** What the caller is doing, for messages ("Cannot <doing>: ...").
   * @default {`read snapshot <sequence> of database "<name>"`} */
  doing?: string | undefined;
  /** Where index chunks come from. @default {the chunk source} */
  indexChunks?: ChunkSource | undefined;
  /** Index chunks already known by id; told of every index chunk the manifest uses. */
  indexCache?: IndexCache | undefined;
  /** Asked about every chunk after chunk 0 (zero chunks included) before it is fetched.
   * @default {nothing is held} */
  have?: ((id: ChunkId, index: number) => HaveResult | Promise<HaveResult>) | undefined;
  /** Receives every chunk not skipped by `have`, chunk 0 first, the others as they arrive. A chunk counts
   * as read once its sink call settles. @default {chunks are only checked} */
  sink?: ((chunk: ImageChunk) => void | Promise<void>) | undefined;
  /** Creates the hash the whole image is fed to, in order; then at most `concurrency + 1` runs run ahead
   * of the hash. No hash is made when `have` skips a chunk. @default {the image is not hashed} */
  hasher?: (() => ImageHash) | undefined;
  /** Runs read at once: each is a run of neighbours in one pack, up to {@linkcode RUN_BYTES}, or one chunk
   * kept as its own object. With `adapt`, the most: the reader starts with 4 and doubles while the store
   * delivers more. @default {8} */
  concurrency?: number | undefined;
  /** Grow the runs in flight, up to `concurrency`, only while that brings more bytes per second.
   * @default {true} */
  adapt?: boolean | undefined;
  /** Cancels the read; it then rejects with the signal's reason once no sink call is running. */
  signal?: AbortSignal | undefined;
  /** Called as chunks are read (in order when hashing) with the chunks done and the chunks in all. */
  onProgress?: ((done: number, total: number) => void) | undefined;
  /** Words the message of a failed check; `undefined` keeps the reader's. A source's own error is passed
   * on as it is unless this words one (it then keeps the error's code). */
  describe?: ((problem: ReadProblem) => string | undefined) | undefined;
  /** The manifest's chunk list, already read and checked by {@linkcode readChunkList}: not read again. */
  list?: LocatedList | undefined;
  /** Read only these chunks (image indexes from 1, ascending), not chunk 0 nor the rest; no hash is made.
   * @default {every chunk} */
  indexes?: readonly number[] | undefined;
}

/** Options of {@linkcode readChunkList}. */
export type ReadChunkListOptions = Pick<
  ReadImageOptions,
  "doing" | "indexChunks" | "indexCache" | "signal" | "describe"
>;

/**
 * The ids and places of a manifest's chunks 1 .. n-1, its index chunks read from `chunks` (or
 * `options.indexChunks`), checked against the image's layout and, in format 2, against the manifest's image
 * digest (`CHECKSUM_MISMATCH`, or `CORRUPT_MANIFEST` when a format 2 manifest has none).
 */
export async function readChunkList(
  manifest: Manifest,
  chunks: ChunkSource,
  options: ReadChunkListOptions = {},
): Promise<LocatedList> {
  const doing = options.doing ?? `read snapshot ${manifest.sequence} of database "${manifest.identity.name}"`;
  const list = await manifestChunkList(manifest, options.indexChunks ?? chunks, {
    doing,
    indexCache: options.indexCache,
    signal: options.signal,
  });
  if (manifest.version === 2) {
    if (!(manifest.imageDigest instanceof Uint8Array)) {
      throw new TesseraError(
        "CORRUPT_MANIFEST",
        `Cannot ${doing}: the format 2 manifest has no image digest`,
      );
    }
    const digest = await imageDigest(manifest.imageLength, manifest.chunkSize, manifest.chunk0, list.ids);
    if (!idsEqual(digest, manifest.imageDigest)) {
      const problem = {
        kind: "digest",
        digest: toHex(digest),
        expected: toHex(manifest.imageDigest),
      } as const;
      throw new TesseraError(
        "CHECKSUM_MISMATCH",
        options.describe?.(problem) ?? `Cannot ${doing}: ${defaultMessage(problem)}`,
      );
    }
  }
  return list;
}

/** What {@linkcode readImage} read. */
export interface ReadImageResult {
  /** The ids of chunks 1 .. n-1, as the manifest lists them. */
  ids: ChunkId[];
  /** Where each of them lives (format 2), in the same order; `undefined` for its own object. */
  locations: (ChunkLocation | undefined)[];
  /** Chunks read from the chunk source (index chunks not counted). */
  fetched: number;
  /** SHA-256 of the whole image, lower-case hex, when it was hashed. */
  sha256: string | undefined;
  /** True when the manifest held the image's SHA-256 and the image hashed matched it. */
  imageVerified: boolean;
  /** True when the manifest held an image digest (format 2) and the chunk list read matched it. */
  digestVerified: boolean;
  /** Store objects the fetched chunks live in: packs, and chunks kept as their own object. */
  objects: number;
  /** Requests the reader made of the chunk source (runs it fetched). */
  requests: number;
}

/**
 * Reads the image `manifest` describes from `chunks`, handing each chunk to `options.sink`. Throws
 * `TesseraError` `NOT_FOUND` for a missing chunk or index chunk, `CORRUPT_MANIFEST` for a chunk list or
 * chunk that does not fit the image, `CHECKSUM_MISMATCH` for an image whose SHA-256 is not the manifest's,
 * and passes on the chunk source's errors (`CHECKSUM_MISMATCH`, `CORRUPT_CHUNK`, ...). After a failure no
 * sink call starts; the call settles once those running have.
 *
 * @example Reading an image into memory
 * ```ts
 * import { createHash } from "node:crypto";
 * import { MemoryChunkCache } from "../chunk/source.ts";
 * import { readImage } from "./read_image.ts";
 *
 * const chunk0 = new Uint8Array(4096).fill(1);
 * const manifest = {
 *   identity: { name: "app", hostname: "", sourcePath: "" }, sequence: 1, createdMs: 0, sourceMtimeMs: 0,
 *   pageSize: 4096, imageLength: 8192, chunkSize: 4096,
 *   imageSha256: new Uint8Array(createHash("sha256").update(chunk0).update(new Uint8Array(4096)).digest()),
 *   chunk0, chunks: { kind: "inline" as const, ids: [new Uint8Array(32)] },
 * };
 * const image = new Uint8Array(manifest.imageLength);
 * const result = await readImage(manifest, new MemoryChunkCache({ capacityBytes: 0 }), {
 *   sink: ({ bytes, offset }) => image.set(bytes, offset),
 *   hasher: () => createHash("sha256"),
 * });
 * console.log(result.imageVerified); // true
 * ```
 */
export async function readImage(
  manifest: Manifest,
  chunks: ChunkSource,
  options: ReadImageOptions = {},
): Promise<ReadImageResult> {
  const { have, sink, signal, onProgress, describe } = options;
  const concurrency = options.concurrency ?? DEFAULT_RUNS;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Cannot read an image: concurrency ${concurrency} is not a positive integer`);
  }
  signal?.throwIfAborted();
  const doing = options.doing ?? `read snapshot ${manifest.sequence} of database "${manifest.identity.name}"`;
  const fail = (problem: CheckProblem): TesseraError =>
    new TesseraError(
      CODES[problem.kind],
      describe?.(problem) ?? `Cannot ${doing}: ${defaultMessage(problem)}`,
    );
  const { chunkSize, imageLength } = manifest;
  // Stops the reads still running when one fails, so no sink call starts after the caller sees the error.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  if (options.indexes && options.hasher) {
    throw new RangeError("Cannot read an image: a hash needs every chunk, and `indexes` reads some");
  }
  let hash = options.hasher?.();
  let ids: ChunkId[] = [];
  let locations: (ChunkLocation | undefined)[] = [];
  let total = 0;
  let done = 0;
  const progress = () => onProgress?.(++done, total);
  // The hash reads runs in order, so only a bounded window of runs may run ahead of it.
  const sequencer = hash === undefined ? undefined : new Sequencer<(Uint8Array | undefined)[]>(
    concurrency + 1,
    (run) => {
      for (const bytes of run) {
        if (bytes) hash?.update(bytes);
        progress();
      }
    },
    0,
  );
  let zeros: Uint8Array | undefined;
  let fetched = 0;
  let requests = 0;
  const objects = new Set<string>();
  const width = options.adapt === false ? undefined : new AdaptiveWidth(concurrency);
  const inFlight = new Map<string, Promise<Uint8Array | undefined>>();

  // Reads the chunks `wanted` (image indexes) with one request to the source; a chunk asked for again while
  // its read is in flight is read once.
  const fetchChunks = async (wanted: number[]): Promise<Uint8Array[]> => {
    const fresh: number[] = [];
    const mine: string[] = [];
    for (const index of wanted) {
      const hex = idToHex(ids[index - 1]!);
      if (inFlight.has(hex) || fresh.some((i) => idsEqual(ids[i - 1]!, ids[index - 1]!))) continue;
      fresh.push(index);
    }
    if (fresh.length > 0) {
      fetched += fresh.length;
      requests++;
      for (const i of fresh) {
        const where = locations[i - 1];
        objects.add(where ? idToHex(where.pack) : idToHex(ids[i - 1]!));
      }
      const batch = getChunks(
        chunks,
        fresh.map((i) => ({ id: ids[i - 1]!, where: locations[i - 1] })),
        { signal: stop.signal, database: manifest.identity.name },
      ).catch((error) => {
        if (stop.signal.aborted || !(error instanceof TesseraError)) throw error;
        const index = error instanceof ChunkRequestError ? fresh[error.request]! : fresh[0]!;
        const cause = error instanceof ChunkRequestError ? error.cause as TesseraError : error;
        const message = describe?.({
          kind: "unreadable",
          index,
          id: ids[index - 1]!,
          where: locations[index - 1],
          error: cause,
        });
        throw message === undefined ? cause : new TesseraError(cause.code, message, { cause });
      });
      fresh.forEach((index, k) => {
        const hex = idToHex(ids[index - 1]!);
        mine.push(hex);
        const one = batch.then((answers) => answers[k]);
        // Handled here too: a failure no reader is left waiting for is not an unhandled rejection.
        one.catch(() => {});
        inFlight.set(hex, one);
      });
    }
    // Taken before the first await: another run may finish and forget a read this one shares meanwhile.
    const pending = wanted.map((index) => inFlight.get(idToHex(ids[index - 1]!)));
    try {
      const out: Uint8Array[] = [];
      for (const [k, index] of wanted.entries()) {
        const id = ids[index - 1]!;
        const bytes = await pending[k];
        const length = Math.min(chunkSize, imageLength - index * chunkSize);
        if (bytes === undefined) {
          throw fail({ kind: "missing", index, id, where: locations[index - 1], source: chunks.description });
        }
        if (bytes.length !== length) {
          throw fail({ kind: "length", index, id, length: bytes.length, expected: length });
        }
        out.push(bytes);
      }
      return out;
    } finally {
      for (const hex of mine) inFlight.delete(hex);
    }
  };

  const readRun = async (run: number[], r: number): Promise<void> => {
    if (sequencer) await sequencer.turn(r, stop.signal);
    const out: (ImageChunk | undefined)[] = [];
    const wanted: number[] = [];
    for (const index of run) {
      const id = ids[index - 1]!;
      const offset = index * chunkSize;
      const length = Math.min(chunkSize, imageLength - offset);
      const had = await have?.(id, index);
      if (had === true) {
        hash = undefined; // the sink holds bytes the hash never sees
        out.push(undefined);
      } else if (had instanceof Uint8Array) {
        if (had.length !== length) {
          throw fail({ kind: "length", index, id, length: had.length, expected: length });
        }
        out.push({ index, offset, id, bytes: had, from: "have" });
      } else if (idsEqual(id, ZERO_ID)) {
        zeros ??= new Uint8Array(chunkSize);
        out.push({ index, offset, id, bytes: zeros.subarray(0, length), from: "zero" });
      } else {
        wanted.push(index);
        out.push({ index, offset, id, bytes: EMPTY, from: "fetched" });
      }
    }
    if (wanted.length > 0) {
      const got = await fetchChunks(wanted);
      let k = 0;
      for (const chunk of out) if (chunk?.from === "fetched") chunk.bytes = got[k++]!;
      width?.record(got.reduce((n, bytes) => n + bytes.length, 0));
    }
    for (const chunk of out) {
      stop.signal.throwIfAborted();
      if (chunk) await sink?.(chunk);
      if (!sequencer) progress();
    }
    sequencer?.complete(r, out.map((chunk) => chunk?.bytes));
  };

  try {
    ({ ids, locations } = options.list ?? await readChunkList(manifest, chunks, {
      doing,
      indexChunks: options.indexChunks,
      indexCache: options.indexCache,
      signal: stop.signal,
      describe,
    }));
    const only = options.indexes;
    total = only ? only.length : ids.length + (imageLength > 0 ? 1 : 0);
    if (imageLength > 0 && !only) {
      await sink?.({ index: 0, offset: 0, id: undefined, bytes: manifest.chunk0, from: "manifest" });
      hash?.update(manifest.chunk0);
      progress();
    }
    await forEachLimit(planRuns(ids, locations, chunkSize, only), async (run, r) => {
      try {
        await readRun(run, r);
      } catch (error) {
        stop.abort(error);
        throw error;
      }
    }, { concurrency: width ? () => width.width : concurrency, signal: stop.signal });
    await chunks.settled?.();
  } catch (error) {
    stop.abort(error);
    throw signal?.aborted ? signal.reason : error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }

  const sha256 = hash?.digest("hex");
  const stated = manifest.imageSha256.some((b) => b !== 0) ? toHex(manifest.imageSha256) : undefined;
  if (sha256 !== undefined && stated !== undefined && sha256 !== stated) {
    throw fail({ kind: "image", sha256, expected: stated });
  }
  return {
    ids,
    locations,
    fetched,
    sha256,
    imageVerified: sha256 !== undefined && stated !== undefined,
    digestVerified: manifest.version === 2,
    objects: objects.size,
    requests,
  };
}

const EMPTY = new Uint8Array(0);

/** Runs read at once, unless the caller says otherwise. */
const DEFAULT_RUNS = 8;
/** The most bytes of chunk objects one run reads from a pack (one ranged GET). */
export const RUN_BYTES = 2 * 1024 * 1024;
/** The most chunks in one run. */
const RUN_CHUNKS = 32;

/**
 * Cuts chunks 1 .. n-1 into runs, the reader's unit of work: neighbours in one pack (each chunk object where
 * the previous ends) up to {@linkcode RUN_BYTES} and {@linkcode RUN_CHUNKS}, read with one request; a chunk
 * kept as its own object alone. Zero chunks join the run they fall in. With `only` (image indexes from 1,
 * ascending), just those chunks.
 */
export function planRuns(
  ids: readonly ChunkId[],
  locations: readonly (ChunkLocation | undefined)[],
  chunkSize: number,
  only?: readonly number[],
): number[][] {
  const runs: number[][] = [];
  let run: number[] = [];
  let bytes = 0;
  let end: { pack: ChunkId; at: number } | undefined;
  const cut = () => {
    if (run.length > 0) runs.push(run);
    run = [];
    bytes = 0;
    end = undefined;
  };
  const count = only ? only.length : ids.length;
  for (let k = 0; k < count; k++) {
    const i = only ? only[k]! - 1 : k;
    if (i < 0 || i >= ids.length) {
      throw new RangeError(`Cannot read chunk #${i + 1}: the image has ${ids.length + 1}`);
    }
    const where = locations[i];
    if (where === undefined && idsEqual(ids[i]!, ZERO_ID)) {
      if (run.length >= RUN_CHUNKS) cut();
      run.push(i + 1);
      continue;
    }
    const follows = where !== undefined && end !== undefined && end.at === where.offset &&
      idsEqual(end.pack, where.pack);
    const size = where?.length ?? chunkSize;
    if (run.length > 0 && (!follows || bytes + size > RUN_BYTES || run.length >= RUN_CHUNKS)) cut();
    run.push(i + 1);
    bytes += size;
    end = where === undefined ? undefined : { pack: where.pack, at: where.offset + where.length };
    // A chunk kept as its own object is a request of its own.
    if (where === undefined) cut();
  }
  cut();
  return runs;
}

/** The checks the reader itself makes (a source's errors are its own). */
type CheckProblem = Exclude<ReadProblem, { kind: "unreadable" }>;

const CODES = {
  missing: "NOT_FOUND",
  length: "CORRUPT_MANIFEST",
  image: "CHECKSUM_MISMATCH",
  digest: "CHECKSUM_MISMATCH",
} as const;

function defaultMessage(problem: CheckProblem): string {
  switch (problem.kind) {
    case "missing":
      return `chunk ${idToHex(problem.id)} (chunk #${problem.index}${
        problem.where ? `, in pack ${idToHex(problem.where.pack)}` : ""
      }) is missing from ${problem.source}`;
    case "length":
      return `chunk ${
        idToHex(problem.id)
      } (chunk #${problem.index}) holds ${problem.length} bytes, but the ` +
        `manifest places ${problem.expected} bytes there`;
    case "image":
      return `the rebuilt image's SHA-256 is ${problem.sha256}, but the manifest says ${problem.expected}`;
    case "digest":
      return `the chunk list's image digest is ${problem.digest}, but the manifest says ${problem.expected}`;
  }
}
