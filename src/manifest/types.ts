/**
 * The snapshot format's data model. `docs/FORMAT.md` defines the bytes; these are the decoded shapes.
 *
 * @module
 */

import type { ChunkId } from "../chunk/ids.ts";
import type { ChunkLocation } from "../chunk/pack.ts";

// Defined with the chunk layer, which names chunks without knowing manifests.
export type { ChunkId, ChunkLocation };

/** Where a database came from, as recorded in each manifest. */
export interface DatabaseIdentity {
  /** The database's name in the store (a key segment): derived from host and path, or chosen. */
  name: string;
  /** The host the source lived on; empty when the name was chosen. */
  hostname: string;
  /** The source file's absolute path; empty when unknown. */
  sourcePath: string;
}

/** How a manifest lists its chunks (after chunk 0, which it holds inline). */
export type ChunkList =
  | {
    kind: "inline";
    ids: ChunkId[];
    /** Format 2: where each chunk lives, in the order of `ids`; `undefined` for a chunk stored as its own
     * object (and for zero chunks). Absent: every chunk is its own object. */
    locations?: (ChunkLocation | undefined)[] | undefined;
  }
  | { kind: "indexed"; count: number; fanout: number; indexIds: ChunkId[] };

/** One snapshot of one database: everything needed to rebuild and verify its image. */
export interface Manifest {
  /** The object's format version: 1 (chunk objects only), or 2 (packs, locations and `imageDigest`, what
   * writers write). @default {1} */
  version?: 1 | 2 | undefined;
  identity: DatabaseIdentity;
  /** Increases by one with each snapshot published for the database, from 1. */
  sequence: number;
  /** When the snapshot was taken, in milliseconds since the epoch. */
  createdMs: number;
  /** The source file's modification time when it was read, in milliseconds since the epoch. */
  sourceMtimeMs: number;
  /** The SQLite page size of the image. */
  pageSize: number;
  /** The image's length in bytes. */
  imageLength: number;
  /** The chunk size in bytes, a power of two from 4 KiB to 1 MiB, at least the page size. */
  chunkSize: number;
  /** SHA-256 of the whole image, or 32 zero bytes when the writer did not read it whole. */
  imageSha256: Uint8Array;
  /** Format 2: the image digest (`docs/FORMAT.md`): a SHA-256 over the image's length, chunk size, chunk 0
   * and the ordered ids of the other chunks, which a writer computes without reading unchanged chunks. */
  imageDigest?: Uint8Array | undefined;
  /** The bytes of chunk 0 (the first `min(chunkSize, imageLength)` bytes of the image). */
  chunk0: Uint8Array;
  /** The ids of chunks 1 .. n-1; an all-zero id stands for a chunk of zero bytes, which is never stored. */
  chunks: ChunkList;
}

/** The mutable object naming a database's newest manifest. */
export interface Pointer {
  sequence: number;
  /** SHA-256 of the manifest object's bytes, as stored. */
  manifestSha256: Uint8Array;
  createdMs: number;
  /** Who published it: a replicator's id, or empty. */
  writer: string;
}
