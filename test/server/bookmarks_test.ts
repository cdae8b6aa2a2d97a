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

  it("names a held transaction's snapshot, refuses a newer minimum inside it, and ends waits at shutdown", async () => {
    const url = `${server.url}/app/v2/pipeline`;
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    const count = { type: "execute", stmt: { sql: "SELECT count(*) FROM notes", want_rows: true } };
    const opened = await post({ requests: [{ type: "execute", stmt: { sql: "BEGIN" } }, count] });
    const pinned = Number(opened.headers.get("Tessera-Sequence"));
    const first = await opened.json();
    const rowsAtBegin = first.results[1].response.result.rows;

    await writer.execute("INSERT INTO notes (body) VALUES ('after begin')");
    const wrote = (await writer.bookmark())!;
    await writer.flush();
    await replica.refresh(2);
    assert.ok(
      replica.sequence >= wrote && wrote > pinned,
      "the replica moved past the transaction's snapshot",
    );

    const inside = await post({ baton: first.baton, requests: [count] });
    assert.equal(
      Number(inside.headers.get("Tessera-Sequence")),
      pinned,
      "the answer names the snapshot read",
    );
    const insideBody = await inside.json();
    assert.deepEqual(insideBody.results[0].response.result.rows, rowsAtBegin);

    const refused = await post({ baton: insideBody.baton, requests: [count] }, {
      "Tessera-Min-Sequence": String(wrote),
    });
    assert.equal(refused.status, 412);
    const refusal = await refused.json();
    assert.equal(refusal.code, "BOOKMARK_NOT_REACHED");
    assert.match(
      refusal.message,
      new RegExp(`serves sequence ${pinned}, not yet ${wrote}, in the stream's transaction`),
    );
    const outside = await post({ requests: [count, { type: "close" }] }, {
      "Tessera-Min-Sequence": String(wrote),
    });
    assert.equal(outside.status, 200);
    assert.ok(Number(outside.headers.get("Tessera-Sequence")) >= wrote);

    // A request waiting for a sequence that never comes answers SHUTTING_DOWN when the server stops.
    const app = createApp({ databases: { app: { replica, public: true } }, closeReplicas: false });
    const stopping = await listen(app, { port: 0 });
    try {
      const waiting = fetch(`${stopping.url}/v1/db/app/query`, {
        method: "POST",
        headers: { "Tessera-Min-Sequence": String(wrote + 1000), "Tessera-Wait-Ms": "60000" },
        body: JSON.stringify({ sql: "SELECT 1" }),
      });
      while (app.inFlight === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const shutdown = app.shutdown({ timeoutMs: 60_000 });
      const answer = await waiting;
      assert.equal(answer.status, 503);
      assert.deepEqual(await answer.json(), {
        message: "The server is shutting down",
        code: "SHUTTING_DOWN",
      });
      await shutdown;
      assert.equal(replica.closed, false, "closeReplicas: false leaves the replica open");
    } finally {
      await stopping.close();
    }
  });
});
