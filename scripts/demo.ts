/**
 * The quick-start demo, end to end on a local-directory store (no S3 needed): make a SQLite database with
 * random rows, sync it, change one row, sync again (only the changed chunk goes up), restore it, and
 * compare hashes, and read it through a replica that refreshes to the change. Runs under Deno (`deno task demo`) and Bun (`bun scripts/demo.ts`).
 *
 * @module
 */

import { createClient } from "@libsql/client";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  loadLatest,
  LocalStore,
  openReplica,
  type Replica,
  restoreImage,
  StoreChunkSource,
  syncDatabase,
  type SyncReport,
} from "../src/mod.ts";

const ROWS = 20_000;

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function describe(step: string, r: SyncReport): string {
  return `${step}: sequence ${r.sequence}, ${r.chunks.uploaded} of ${r.chunks.total} chunks uploaded ` +
    `(${kib(r.bytes.data)} of data, ${kib(r.bytes.manifest)} of manifest)`;
}

async function sha256File(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path)).digest("hex");
}

async function main(): Promise<void> {
  const keep = process.argv.includes("--keep");
  const work = await mkdtemp(join(tmpdir(), "tessera-demo-"));
  const dbPath = join(work, "app.db");
  const store = new LocalStore(join(work, "backups"));
  const sync = () =>
    syncDatabase(dbPath, { stores: [store], hostname: "demo-host", spoolDir: join(work, "spool") });
  let replica: Replica | undefined;
  try {
    const db = createClient({ url: `file:${dbPath}` });
    await db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score REAL)");
    await db.batch(
      Array.from({ length: ROWS }, (_, i) => ({
        sql: "INSERT INTO notes (id, title, score) VALUES (?, ?, ?)",
        args: [i + 1, `note ${i + 1} ${crypto.randomUUID()}`, Math.random()],
      })),
      "write",
    );
    const size = (await readFile(dbPath)).length;
    console.log(`created ${dbPath}: ${ROWS} rows, ${size} bytes`);

    const first = await sync();
    console.log(`synced as ${first.name} to ${store.description}`);
    console.log(describe("first sync", first));
    const unchanged = await sync();
    console.log(`second sync: ${unchanged.noop ? "unchanged, nothing uploaded" : "uploaded again?!"}`);

    // A read replica: @libsql/client's interface over the snapshot in the store (SQLite in WebAssembly).
    replica = await openReplica(first.name, { store, autoRefresh: false, pollIntervalMs: 0 });
    const before = await replica.execute("SELECT title FROM notes WHERE id = 15000");
    console.log(`replica at sequence ${replica.sequence}: row 15000 = "${before.rows[0]?.title}"`);

    await db.execute({
      sql: "UPDATE notes SET title = ? WHERE id = ?",
      args: ["changed by the demo", 15_000],
    });
    db.close();
    const changed = await sync();
    console.log(describe("after changing one row", changed));
    await replica.refresh(1);
    const after = await replica.execute("SELECT title FROM notes WHERE id = 15000");
    console.log(`replica refreshed to sequence ${replica.sequence}: row 15000 = "${after.rows[0]?.title}"`);
    if (replica.sequence !== changed.sequence || after.rows[0]?.title !== "changed by the demo") {
      throw new Error("the replica did not move to the new snapshot");
    }

    const restoredPath = join(work, "restored.db");
    const { manifest } = await loadLatest(store, changed.name);
    const restored = await restoreImage({ manifest, chunks: new StoreChunkSource(store), out: restoredPath });
    const [want, have] = [await sha256File(dbPath), await sha256File(restoredPath)];
    console.log(`restored ${restoredPath}`);
    console.log(`  source   sha256 ${want}`);
    console.log(`  restored sha256 ${have}`);
    const check = createClient({ url: `file:${restoredPath}` });
    const row = await check.execute("SELECT title FROM notes WHERE id = 15000");
    const count = await check.execute("SELECT count(*) AS n FROM notes");
    const integrity = await check.execute("PRAGMA integrity_check");
    check.close();
    const ok = want === have && restored.sha256 === have && row.rows[0]?.title === "changed by the demo" &&
      Number(count.rows[0]?.n) === ROWS && integrity.rows[0]?.[0] === "ok";
    if (!ok) throw new Error("the restored database differs from the source");
    console.log(`demo ok: byte-identical, integrity ok, ${ROWS} rows, row 15000 = "${row.rows[0]?.title}"`);
  } finally {
    replica?.close();
    if (keep) console.log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

await main();
