/**
 * A short-lived program writing through a replicating client, for client_test.ts:
 * `_client_main.ts DB STORE_DIR SPOOL_DIR MODE COUNT` inserts COUNT rows, one commit each, then ends by
 * MODE: `close` (the synchronous `close()`, then falls off the end), `flush-exit` (`await flush()`,
 * `close()`, `process.exit(0)`) or `close-async-exit` (`await closeAsync()`, `process.exit(0)`). The
 * debounce is far longer than the program runs, so only the close path can publish the last rows.
 *
 * @module
 */

import process from "node:process";
import { createReplicatingClient } from "../../src/replicate/client.ts";
import { LocalStore } from "../../src/store/local.ts";

const [db, storeDir, spoolDir, mode, count] = process.argv.slice(2);
if (!db || !storeDir || !spoolDir || !mode || !count) {
  throw new TypeError("usage: _client_main.ts DB STORE_DIR SPOOL_DIR MODE COUNT");
}
const client = await createReplicatingClient({
  url: db,
  store: new LocalStore(storeDir),
  hostname: "client-main",
  spoolDir,
  debounceMs: 600_000,
  maxDelayMs: 600_000,
});
await client.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, note TEXT)");
for (let i = 1; i <= Number(count); i++) {
  await client.execute({ sql: "INSERT INTO rows (id, note) VALUES (?, ?)", args: [i, `row ${i}`] });
}
console.log(`name ${client.name}`);
if (mode === "close") {
  client.close();
  console.log(`closed ${client.closed}`);
} else if (mode === "flush-exit") {
  const flushed = await client.flush();
  client.close();
  console.log(`flushed ${JSON.stringify(flushed)}`);
  process.exit(0);
} else if (mode === "close-async-exit") {
  const closed = await client.closeAsync();
  console.log(`flushed ${JSON.stringify(closed)}`);
  process.exit(0);
} else {
  throw new TypeError(`unknown mode ${mode}`);
}
