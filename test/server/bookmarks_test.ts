/**
 * Read your writes through the server: every answer names the snapshot that served it, a request can ask
 * for at least a sequence and waits for it (or fails with 412), and an application writing through
 * `createReplicatingClient` reads its own writes through a replica server with @libsql/client.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "@libsql/client";
import { openReplica } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { createReplicatingClient } from "../../src/replicate/client.ts";
import type { ReplicatingClient } from "../../src/replicate/client.ts";
import { createApp } from "../../src/server/app.ts";
import { bookmarkFetch } from "../../src/server/bookmarks.ts";
import { listen, type Listening } from "../../src/server/serve.ts";
import { LocalStore } from "../../src/store/local.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

describe("bookmarks", () => {
  let dir: string;
  let writer: ReplicatingClient;
  let replica: Replica;
  let server: Listening;
  let store: LocalStore;

  before(async () => {
    dir = await makeTempDir("server-bookmarks");
    store = new LocalStore(join(dir, "store"));
    writer = await createReplicatingClient({
      url: `file:${join(dir, "app.db")}`,
      store,
      hostname: "writer-host",
      spoolDir: join(dir, "spool"),
      debounceMs: 20,
      maxDelayMs: 200,
    });
    await writer.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
    await writer.flush();
    // The replica does not poll: only a bookmark (or a refresh) moves it.
    replica = await openReplica(writer.name, { store, pollIntervalMs: 0, intMode: "bigint" });
    server = await listen(
      createApp({ databases: { app: { replica, public: true } }, maxBookmarkWaitMs: 5000 }),
      {
        port: 0,
      },
    );
  });
  after(async () => {
    await server?.close();
    await writer?.closeAsync();
    await removeDir(dir);
  });

  it("names the served snapshot on every answer, and waits for a minimum sequence", async () => {
    const query = (headers: Record<string, string> = {}) =>
      fetch(`${server.url}/v1/db/app/query`, {
        method: "POST",
        headers,
        body: JSON.stringify({ sql: "SELECT count(*) AS n FROM notes" }),
      });
    const first = await query();
    assert.equal(first.headers.get("Tessera-Sequence"), String(replica.sequence));
    assert.equal(first.headers.get("Tessera-Snapshot-Ctime"), new Date(replica.snapshotCtime).toISOString());
    assert.deepEqual(await first.json(), { columns: ["n"], rows: [{ n: 0 }], sequence: replica.sequence });

    await writer.execute("INSERT INTO notes (body) VALUES ('one')");
    const wrote = await writer.bookmark();
    assert.ok(
      wrote !== null && wrote > replica.sequence,
      `the bookmark ${wrote} is newer than ${replica.sequence}`,
    );
    const stale = await query();
    assert.deepEqual((await stale.json()).rows, [{ n: 0 }], "without a bookmark the replica may be behind");
    const fresh = await query({ "Tessera-Min-Sequence": String(wrote) });
    assert.equal(fresh.status, 200);
    assert.ok(Number(fresh.headers.get("Tessera-Sequence")) >= wrote!);
    assert.deepEqual((await fresh.json()).rows, [{ n: 1 }]);

    const future = await query({ "Tessera-Min-Sequence": String(wrote! + 100), "Tessera-Wait-Ms": "300" });
    assert.equal(future.status, 412);
    assert.deepEqual(await future.json(), {
      message:
        `The replica serves sequence ${replica.sequence}, not yet ${wrote! + 100}, after waiting 300 ms: ` +
        "retry, or read from the primary",
      code: "BOOKMARK_NOT_REACHED",
    });
    const bad = await query({ "Tessera-Min-Sequence": "soon" });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).code, "BAD_REQUEST");
  });

  it("gives @libsql/client read-your-writes through bookmarkFetch", async () => {
    let wrote: number | undefined;
    const seen: number[] = [];
    const reader = createClient({
      url: `${server.url}/app/`,
      fetch: bookmarkFetch({ minSequence: () => wrote, onSequence: (n) => seen.push(n) }),
    });
    const plain = createClient({ url: `${server.url}/app/` });
    try {
      for (let i = 0; i < 5; i++) {
        const before = (await reader.execute("SELECT count(*) AS n FROM notes")).rows[0]!.n as number;
        await writer.execute({ sql: "INSERT INTO notes (body) VALUES (?)", args: [`note ${i}`] });
        wrote = (await writer.bookmark()) ?? undefined;
        assert.equal(
          (await plain.execute("SELECT count(*) AS n FROM notes")).rows[0]!.n,
          before,
          "a client without the bookmark reads the snapshot the replica holds",
        );
        const rs = await reader.execute("SELECT count(*) AS n, max(body) AS last FROM notes");
        assert.equal(rs.rows[0]!.n, before + 1, `write ${i} is read back`);
        assert.ok(seen.at(-1)! >= wrote!, "the answer names a snapshot at least as new as the write");
      }
      // A transaction over several requests starts at the bookmark too.
      await writer.execute("INSERT INTO notes (body) VALUES ('in a transaction')");
      wrote = (await writer.bookmark()) ?? undefined;
      const tx = await reader.transaction("read");
      const rs = await tx.execute("SELECT body FROM notes ORDER BY id DESC LIMIT 1");
      assert.equal(rs.rows[0]!.body, "in a transaction");
      await tx.commit();
    } finally {
      reader.close();
      plain.close();
    }
  });
});
