/**
 * The local record of the last sync of a database to a set of stores, kept in the spool directory. It
 * lets the next sync tell from cheap evidence whether, and where, the database changed, and which chunks
 * the stores already hold. Losing it costs time only: the stores are content-addressed.
 *
 * @module
 */

import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../files.ts";
import type { SourceEvidence } from "./source.ts";

/** What the spool remembers of one database's last sync. */
export interface SyncState {
  version: 1;
  name: string;
  /** The stores the sync wrote to, by description; a record is only used for the same stores. */
  stores: string[];
  chunkSize: number;
  pageSize: number;
  imageLength: number;
  evidence: SourceEvidence;
  /** Hex ids of chunks 1 .. n-1 (the all-zero id for zero chunks). */
  ids: string[];
  /** Hex ids of the index chunks of the last manifest. */
  indexIds: string[];
  sequence: number;
  manifestSha256: string;
}

function statePath(spoolDir: string, name: string): string {
  return join(spoolDir, "sync", `${name}.json`);
}

/** Reads the record for `name`, or `undefined` when there is none or it does not fit `stores`. */
export async function loadSyncState(
  spoolDir: string,
  name: string,
  stores: string[],
): Promise<SyncState | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(spoolDir, name), "utf8");
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as SyncState;
    return isUsable(state, name, stores) ? state : undefined;
  } catch {
    // A damaged record is as good as none: the next sync reads the whole database.
    return undefined;
  }
}

/** Writes the record atomically. */
export async function saveSyncState(spoolDir: string, state: SyncState): Promise<void> {
  await mkdir(join(spoolDir, "sync"), { recursive: true, mode: 0o700 });
  await writeFileAtomic(statePath(spoolDir, state.name), new TextEncoder().encode(JSON.stringify(state)));
}

const HEX_ID = /^[0-9a-f]{64}$/;

// A record that does not describe a sync of this database to these stores, shape for shape, is ignored:
// the next sync then reads everything, which is slow but always right.
function isUsable(state: SyncState, name: string, stores: string[]): boolean {
  if (typeof state !== "object" || state === null || state.version !== 1 || state.name !== name) return false;
  if (!Array.isArray(state.stores) || state.stores.length !== stores.length) return false;
  if (state.stores.some((s, i) => s !== stores[i])) return false;
  const counts = [state.chunkSize, state.pageSize, state.imageLength, state.sequence];
  if (!counts.every((n) => Number.isSafeInteger(n) && n >= 0) || state.chunkSize <= 0) return false;
  if (!Array.isArray(state.ids) || !Array.isArray(state.indexIds)) return false;
  if (state.ids.length !== Math.max(0, Math.ceil(state.imageLength / state.chunkSize) - 1)) return false;
  const hex = [...state.ids, ...state.indexIds, state.manifestSha256];
  if (!hex.every((id) => typeof id === "string" && HEX_ID.test(id))) return false;
  const e = state.evidence;
  if (typeof e !== "object" || e === null) return false;
  if (![e.size, e.mtimeMs, e.ino, e.changeCounter].every((n) => typeof n === "number")) return false;
  return e.wal === null ||
    (typeof e.wal === "object" &&
      [e.wal.salt1, e.wal.salt2, e.wal.frames].every((n) => typeof n === "number"));
}
