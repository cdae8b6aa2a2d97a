/**
 * The quick-start demo: make a SQLite database, store it as content-addressed chunks in a local-directory
 * store, change one row, store it again (only the changed chunks go up), read it back from the store
 * and check it byte for byte. Runs under Deno (`deno task demo`) and Bun (`bun scripts/demo.ts`).
 *
 * The snapshot format here is a stand-in until the real manifest format lands (docs/FORMAT.md).
 *
 * @module
 */

import { createClient } from "@libsql/client";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { sha256Hex } from "../src/bytes.ts";
import { LocalStore } from "../src/store/local.ts";
import type { BlobStore } from "../src/store/types.ts";
import { writeFileAtomic } from "../src/files.ts";

const CHUNK_SIZE = 64 * 1024;
const ROWS = 20_000;

interface DemoManifest {
  imageSha256: string;
  size: number;
  chunks: string[];
}

async function storeImage(
  store: BlobStore,
  image: Uint8Array,
): Promise<{ uploaded: number; total: number; bytes: number }> {
  const chunks: string[] = [];
  let uploaded = 0;
  let bytes = 0;
  for (let offset = 0; offset < image.length; offset += CHUNK_SIZE) {
    const chunk = image.subarray(offset, offset + CHUNK_SIZE);
    const id = await sha256Hex(chunk);
    chunks.push(id);
    // Content-addressed: a chunk already in the store never goes up again.
    if ((await store.head(`demo/chunks/${id}`)).status === "not_found") {
      await store.put(`demo/chunks/${id}`, chunk);
      uploaded++;
      bytes += chunk.length;
    }
  }
  const manifest: DemoManifest = { imageSha256: await sha256Hex(image), size: image.length, chunks };
  await store.put("demo/manifest.json", new TextEncoder().encode(JSON.stringify(manifest)));
  return { uploaded, total: chunks.length, bytes };
}

async function readImage(store: BlobStore): Promise<Uint8Array> {
  const got = await store.get("demo/manifest.json");
  if (got.status !== "ok") throw new Error("the demo manifest is missing from the store");
  const manifest = JSON.parse(new TextDecoder().decode(got.body)) as DemoManifest;
  const image = new Uint8Array(manifest.size);
  for (const [i, id] of manifest.chunks.entries()) {
    const chunk = await store.get(`demo/chunks/${id}`);
    if (chunk.status !== "ok") throw new Error(`chunk ${id} is missing from the store`);
    if (await sha256Hex(chunk.body) !== id) throw new Error(`chunk ${id} does not match its id`);
    image.set(chunk.body, i * CHUNK_SIZE);
  }
  if (await sha256Hex(image) !== manifest.imageSha256) throw new Error("the restored image does not match");
  return image;
}

async function main(): Promise<void> {
  const keep = process.argv.includes("--keep");
  const work = await mkdtemp(join(tmpdir(), "tessera-demo-"));
  const dbPath = join(work, "app.db");
  const storeDir = join(work, "store");
  const say = (line: string) => console.log(line);
  try {
    const db = createClient({ url: `file:${dbPath}` });
    await db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score REAL)");
    const statements = Array.from({ length: ROWS }, (_, i) => ({
      sql: "INSERT INTO notes (id, title, score) VALUES (?, ?, ?)",
      args: [i + 1, `note ${i + 1} ${crypto.randomUUID()}`, Math.random()],
    }));
    await db.batch(statements, "write");
    db.close();
    const first = new Uint8Array(await readFile(dbPath));
    say(`created ${dbPath}: ${ROWS} rows, ${first.length} bytes`);

    const store = new LocalStore(storeDir);
    const one = await storeImage(store, first);
    say(`stored in ${store.description}: ${one.uploaded}/${one.total} chunks uploaded (${one.bytes} bytes)`);

    const again = createClient({ url: `file:${dbPath}` });
    await again.execute({
      sql: "UPDATE notes SET title = ? WHERE id = ?",
      args: ["changed by the demo", 4242],
    });
    again.close();
    const second = new Uint8Array(await readFile(dbPath));
    const two = await storeImage(store, second);
    say(`changed one row, stored again: ${two.uploaded}/${two.total} chunks uploaded (${two.bytes} bytes)`);

    const restored = await readImage(new LocalStore(storeDir));
    const restoredPath = join(work, "restored.db");
    await writeFileAtomic(restoredPath, restored);
    const [want, have] = [await sha256Hex(second), await sha256Hex(restored)];
    const check = createClient({ url: `file:${restoredPath}` });
    const row = await check.execute("SELECT title FROM notes WHERE id = 4242");
    const count = await check.execute("SELECT count(*) AS n FROM notes");
    check.close();
    say(`restored ${restoredPath}: sha256 ${have}`);
    say(`source                     sha256 ${want}`);
    if (want !== have || row.rows[0]?.title !== "changed by the demo" || Number(count.rows[0]?.n) !== ROWS) {
      throw new Error("the restored database differs from the source");
    }
    say(`demo ok: byte-identical, ${count.rows[0]?.n} rows, row 4242 = "${row.rows[0]?.title}"`);
  } finally {
    if (keep) say(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

await main();
