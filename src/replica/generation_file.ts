/**
 * The files the native engine reads snapshots from ("generations"), patched in place: a new snapshot
 * rewrites only the chunks that differ from what the file held, taking them from another generation file
 * when one holds them, else from the chunk source.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { type ChunkId, idsEqual, idToHex, ZERO_ID } from "../chunk/ids.ts";
import type { ChunkSource } from "../chunk/source.ts";
import type { IndexCache } from "../manifest/chunk_list.ts";
import type { Manifest } from "../manifest/types.ts";
import { readImage, type ReadImageResult } from "../restore/read_image.ts";
import { describeOpenProblem, newGeneration, servedHeader } from "./image.ts";

/** A generation file and what it holds. */
export interface GenerationFile {
  readonly path: string;
  /** The ids of chunks 1 .. n-1 the file holds (chunk 0 is always rewritten), or unknown. */
  ids: ChunkId[] | undefined;
  /** The chunk size of `ids`. */
  chunkSize: number;
}

/** Options of {@linkcode patchGenerationFile}. */
export interface PatchOptions {
  /** Where chunks (and index chunks) come from. */
  chunks: ChunkSource;
  /** Other generation files; chunks one of them is known to hold are copied from it, checked by id. */
  others?: readonly GenerationFile[] | undefined;
  /** Index chunks already known by id. */
  indexCache?: IndexCache | undefined;
  /** Chunks read at once. @default {8} */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Makes `file` hold the image of `manifest`, chunk 0 rewritten to be served (`servedHeader`), and records
 * what it holds; on failure the file's content is unknown. Returns the chunks read from `options.chunks`.
 *
 * @example Materializing a snapshot
 * ```ts ignore
 * import { patchGenerationFile } from "./generation_file.ts";
 * const file = { path: "/tmp/generation-1.db", ids: undefined, chunkSize: 0 };
 * const fetched = await patchGenerationFile(file, manifest, { chunks });
 * ```
 */
export async function patchGenerationFile(
  file: GenerationFile,
  manifest: Manifest,
  options: PatchOptions,
): Promise<number> {
  const { chunkSize, imageLength } = manifest;
  const what = `snapshot ${manifest.sequence} of database "${manifest.identity.name}"`;
  const had = file.chunkSize === chunkSize ? file.ids : undefined;
  file.ids = undefined; // unknown until the patch completes
  // Where else a chunk sits on local disk: in another generation file whose content is known.
  const local = new Map<string, { path: string; offset: number }>();
  for (const other of options.others ?? []) {
    if (other === file || !other.ids || other.chunkSize !== chunkSize) continue;
    other.ids.forEach((id, i) => local.set(idToHex(id), { path: other.path, offset: (i + 1) * chunkSize }));
  }
  const handle = await open(file.path, had === undefined ? "w+" : "r+");
  let read: ReadImageResult;
  try {
    await handle.truncate(imageLength);
    read = await readImage(manifest, options.chunks, {
      doing: `open ${what}`,
      indexCache: options.indexCache,
      have: (id, index) => {
        const held = had?.[index - 1];
        if (held && idsEqual(held, id)) return true;
        if (idsEqual(id, ZERO_ID)) return undefined;
        return readLocal(local.get(idToHex(id)), id, Math.min(chunkSize, imageLength - index * chunkSize));
      },
      sink: async ({ index, offset, bytes }) => {
        const written = index === 0 ? servedHeader(bytes, newGeneration()) : bytes;
        await handle.write(written, 0, written.length, offset);
      },
      describe: describeOpenProblem(what),
      concurrency: options.concurrency,
      signal: options.signal,
    });
  } finally {
    await handle.close();
  }
  file.ids = read.ids;
  file.chunkSize = chunkSize;
  return read.fetched;
}

/** Reads a chunk from another generation file and checks it against its id; `undefined` when it does not
 * match (that file may be mid-patch) or cannot be read. */
async function readLocal(
  at: { path: string; offset: number } | undefined,
  id: ChunkId,
  length: number,
): Promise<Uint8Array | undefined> {
  if (!at) return undefined;
  try {
    const handle = await open(at.path, "r");
    try {
      const bytes = new Uint8Array(length);
      const { bytesRead } = await handle.read(bytes, 0, length, at.offset);
      if (bytesRead !== length) return undefined;
      const digest = createHash("sha256").update(bytes).digest();
      return idsEqual(new Uint8Array(digest), id) ? bytes : undefined;
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}
