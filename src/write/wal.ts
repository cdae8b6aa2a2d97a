/**
 * Reading a SQLite write-ahead log: which pages its committed frames touch. The sync uses this as cheap
 * evidence of what changed since the last sync, so a small commit does not cost a re-read of the file.
 *
 * Layout (SQLite's WAL format): a 32-byte header (magic, version, page size, checkpoint sequence, two
 * salts, two checksums) and frames of a 24-byte header (page number, database size in pages for a commit
 * frame or 0, the two salts, two checksums) followed by one page. A frame is valid when its salts match
 * the header's and its checksum continues the running checksum; the log's content ends at the last valid
 * commit frame.
 *
 * @module
 */

import { readFile } from "node:fs/promises";

/** What the committed part of a WAL file holds. */
export interface WalSummary {
  salt1: number;
  salt2: number;
  pageSize: number;
  /** Valid frames up to and including the last commit frame. */
  frames: number;
  /** The database size in pages after the last commit, or 0 when no frame is committed. */
  dbPages: number;
  /** The page number of each committed frame, in order. */
  framePages: number[];
}

const HEADER = 32;
const FRAME_HEADER = 24;

/** Reads and checks the WAL at `path`; `undefined` when it is absent, empty or has no valid header. */
export async function readWal(path: string): Promise<WalSummary | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return undefined;
    throw error;
  }
  return parseWal(bytes);
}

/** Parses WAL bytes; `undefined` when the header is missing or invalid (SQLite then ignores the log). */
export function parseWal(bytes: Uint8Array): WalSummary | undefined {
  if (bytes.length < HEADER) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return undefined;
  const bigEndian = magic === 0x377f0683;
  const pageSize = normalisePageSize(view.getUint32(8));
  if (pageSize === undefined) return undefined;
  const salt1 = view.getUint32(16);
  const salt2 = view.getUint32(20);
  let [s0, s1] = checksum(view, 0, 24, bigEndian, 0, 0);
  if (s0 !== view.getUint32(24) || s1 !== view.getUint32(28)) return undefined;

  const framePages: number[] = [];
  let frames = 0;
  let dbPages = 0;
  const frameSize = FRAME_HEADER + pageSize;
  for (let at = HEADER; at + frameSize <= bytes.length; at += frameSize) {
    if (view.getUint32(at + 8) !== salt1 || view.getUint32(at + 12) !== salt2) break;
    [s0, s1] = checksum(view, at, 8, bigEndian, s0, s1);
    [s0, s1] = checksum(view, at + FRAME_HEADER, pageSize, bigEndian, s0, s1);
    if (s0 !== view.getUint32(at + 16) || s1 !== view.getUint32(at + 20)) break;
    framePages.push(view.getUint32(at));
    const commitSize = view.getUint32(at + 4);
    if (commitSize !== 0) {
      frames = framePages.length;
      dbPages = commitSize;
    }
  }
  framePages.length = frames;
  return { salt1, salt2, pageSize, frames, dbPages, framePages };
}

// SQLite stores a page size of 65536 as 1.
function normalisePageSize(raw: number): number | undefined {
  const size = raw === 1 ? 65536 : raw;
  return size >= 512 && size <= 65536 && (size & (size - 1)) === 0 ? size : undefined;
}

// The WAL checksum: over pairs of 32-bit words, s0 += x0 + s1, s1 += x1 + s0, modulo 2^32.
function checksum(
  view: DataView,
  offset: number,
  length: number,
  bigEndian: boolean,
  s0: number,
  s1: number,
): [number, number] {
  for (let i = offset; i < offset + length; i += 8) {
    const x0 = view.getUint32(i, !bigEndian);
    const x1 = view.getUint32(i + 4, !bigEndian);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}
