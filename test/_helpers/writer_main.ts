/**
 * A real writer process for tests: commits numbered transactions to a SQLite database until it has
 * committed `--count` of them or is told to stop (SIGTERM or stdin closing). Transaction k inserts row k
 * into `items` (with a payload spread over several pages) and sets `meta.last = k`, so any committed state
 * is "rows 1..k and last = k" for one k, and a snapshot can be checked against that.
 *
 * Usage: writer_main.ts DB --mode wal|delete [--count N] [--payload BYTES] [--pause-ms MS]
 * Prints "ready" once the schema exists, then "committed k" after each commit.
 *
 * @module
 */

import { createClient } from "@libsql/client";
import process from "node:process";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    mode: { type: "string", default: "wal" },
    count: { type: "string", default: "1000000" },
    payload: { type: "string", default: "1500" },
    "pause-ms": { type: "string", default: "0" },
    start: { type: "string", default: "0" },
  },
});
const path = positionals[0];
if (!path) throw new Error("writer_main.ts: give a database path");
const db = createClient({ url: `file:${path}` });
await db.execute("PRAGMA busy_timeout = 20000");
await db.execute(`PRAGMA journal_mode = ${values.mode === "wal" ? "WAL" : "DELETE"}`);
await db.execute("CREATE TABLE IF NOT EXISTS items (k INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
await db.execute(
  "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)",
);
await db.execute("INSERT OR IGNORE INTO meta (id, last) VALUES (1, 0)");
let stopping = false;
process.on("SIGTERM", () => (stopping = true));
process.stdin.on("end", () => (stopping = true));
process.stdin.resume();
console.log("ready");
const count = Number(values.count);
const payload = Number(values.payload);
const pause = Number(values["pause-ms"]);
let k = Number((await db.execute("SELECT last FROM meta")).rows[0]?.[0] ?? 0);
const end = k + count;
while (!stopping && k < end) {
  k++;
  const bytes = new Uint8Array(payload);
  for (let i = 0; i < payload; i += 64) bytes[i] = (k * 7 + i) & 0xff;
  await db.batch([
    { sql: "INSERT INTO items (k, payload) VALUES (?, ?)", args: [k, bytes] },
    { sql: "UPDATE meta SET last = ? WHERE id = 1", args: [k] },
  ], "write");
  console.log(`committed ${k}`);
  // Yield to the event loop every time: the driver's promises settle as microtasks, and without a
  // macrotask turn the stop signal would never be handled.
  await new Promise((r) => setTimeout(r, pause));
}
db.close();
process.exit(0);
