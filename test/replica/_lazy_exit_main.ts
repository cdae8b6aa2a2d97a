/**
 * Opens a lazy replica with no memory (so its statements run in the offload worker), runs one query, prints
 * the row, and does not close the replica: the process must still exit on its own.
 *
 * Usage: _lazy_exit_main.ts STORE_DIR NAME
 */
import process from "node:process";
import { openReplica } from "../../src/replica/open.ts";
import { LocalStore } from "../../src/store/local.ts";

const [dir, name] = process.argv.slice(2);
const replica = await openReplica(name!, {
  store: new LocalStore(dir!),
  load: "lazy",
  memoryCacheBytes: 0,
  pollIntervalMs: 0,
});
const { rows } = await replica.execute("SELECT count(*) FROM t");
console.log(JSON.stringify({ count: Number(rows[0]![0]), offloaded: replica.status().memory.offloaded }));
