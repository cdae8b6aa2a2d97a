/**
 * Checks a database image the way a user would: opens it with SQLite, runs `PRAGMA integrity_check`, and
 * reads which committed state of the test writer (test/_helpers/writer_main.ts) it holds.
 *
 * @module
 */

import { createClient } from "@libsql/client";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, removeDir } from "./temp.ts";

/** What an image of the writer's database holds. */
export interface WriterState {
  integrity: string;
  /** `meta.last`: the number of the last committed transaction. */
  last: number;
  /** Rows in `items`, and the smallest and largest key. */
  rows: number;
  minK: number;
  maxK: number;
}

/** Opens the database file at `path` and reads its state. */
export async function checkWriterDb(path: string): Promise<WriterState> {
  const db = createClient({ url: `file:${path}` });
  try {
    const integrity = String((await db.execute("PRAGMA integrity_check")).rows[0]?.[0]);
    const meta = await db.execute("SELECT last FROM meta");
    const items = await db.execute("SELECT count(*), coalesce(min(k), 0), coalesce(max(k), 0) FROM items");
    const row = items.rows[0];
    return {
      integrity,
      last: Number(meta.rows[0]?.[0]),
      rows: Number(row?.[0]),
      minK: Number(row?.[1]),
      maxK: Number(row?.[2]),
    };
  } finally {
    db.close();
  }
}

/** Writes `image` to a fresh file and checks it. */
export async function checkWriterImage(image: Uint8Array): Promise<WriterState> {
  const dir = await makeTempDir("image-check");
  try {
    const path = join(dir, "image.db");
    await writeFile(path, image);
    return await checkWriterDb(path);
  } finally {
    await removeDir(dir);
  }
}

/** True when the state is exactly "rows 1..k and last = k", a state the writer committed. */
export function isCommittedState(state: WriterState): boolean {
  return state.integrity === "ok" && state.rows === state.last && state.maxK === state.last &&
    (state.last === 0 || state.minK === 1);
}
