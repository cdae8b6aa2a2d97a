/**
 * The real @libsql/client, with an `http://` URL and an `authToken`, reading a replica through the server:
 * the replica parity corpus gives what @libsql/client gives reading the file; batches, read transactions
 * across requests and refused writes behave as a libSQL server's would.
 *
 * What the comparison allows, and why: over HTTP the client encodes some arguments itself before they reach
 * any server (booleans as integers, a Date as a float, -0 as 0, other objects as their text), so the file
 * side runs the statement with the arguments as the client sent them; and the client builds its errors
 * differently per protocol (no `extendedCode`/`rawCode`, a `ResponseError` cause, its own RangeError
 * text), so errors compare by class, code and message, the parts a server decides.
 */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Client, createClient } from "@libsql/client";
import type { InArgs, InStatement, IntMode, InValue } from "@libsql/core/api";
import { INT_MODES, type Outcome, outcomeOf, PARITY_CASES } from "../replica/_parity.ts";
import { type Served, serveParity, TOKEN } from "./_fixture.ts";

function asSent(value: InValue): InValue {
  if (typeof value === "boolean") return value ? 1n : 0n;
  if (value instanceof Date) return value.valueOf();
  if (typeof value === "number" && Object.is(value, -0)) return 0;
  if (
    value !== null && typeof value === "object" && !(value instanceof ArrayBuffer) &&
    !(value instanceof Uint8Array)
  ) {
    return String(value);
  }
  return value;
}

/** The statement as @libsql/client sends it over HTTP. */
function asSentOverHttp(stmt: InStatement): InStatement {
  if (typeof stmt === "string" || stmt.args === undefined) return stmt;
  const args: InArgs = Array.isArray(stmt.args)
    ? stmt.args.map(asSent)
    : Object.fromEntries(Object.entries(stmt.args).map(([k, v]) => [k, asSent(v)]));
  return { sql: stmt.sql, args };
}

/** What a server decides of an outcome. */
function served(outcome: Outcome): unknown {
  if (outcome.ok) return outcome;
  const { className, code, message } = outcome.error;
  return className === "LibsqlError" || className === "LibsqlBatchError"
    ? { className, code, message }
    : { className };
}

for (const engine of ["wasm", "native"] as const) {
  describe(`@libsql/client over HTTP reads a ${engine} replica through the server`, () => {
    let s: Served;
    const http = new Map<IntMode, Client>();

    before(async () => {
      s = await serveParity(`client-${engine}`, { engine });
      for (const intMode of INT_MODES) {
        http.set(intMode, createClient({ url: `${s.server.url}/parity/`, authToken: TOKEN, intMode }));
      }
    });
    after(async () => {
      for (const client of http.values()) client.close();
      await s?.close();
    });

    it("gets what @libsql/client gets on the file, for every statement of the parity corpus", async () => {
      let compared = 0;
      for (const { name, stmt, intModes } of PARITY_CASES) {
        for (const intMode of intModes ?? INT_MODES) {
          const got = await outcomeOf(() => http.get(intMode)!.execute(stmt));
          const want = await outcomeOf(() => s.files.get(intMode)!.execute(asSentOverHttp(stmt)));
          assert.deepStrictEqual(served(got), served(want), `${name} (intMode "${intMode}")`);
          compared++;
        }
      }
      assert.ok(compared >= 190, `the whole corpus ran (${compared})`);
    });

    it("batch() reads one snapshot and answers as on the file, failures included", async () => {
      const client = http.get("number")!;
      const file = s.files.get("number")!;
      const stmts: InStatement[] = [
        "SELECT count(*) AS n FROM items",
        { sql: "SELECT name, price FROM items WHERE id = ?", args: [7] },
        { sql: "SELECT name FROM items WHERE id = :id", args: { id: 8 } },
        "SELECT count(*) AS n FROM items",
      ];
      for (const mode of ["read", "deferred"] as const) {
        const got = await client.batch(stmts, mode);
        const want = await file.batch(stmts, "read");
        assert.deepStrictEqual(got.map((r) => r.toJSON()), want.map((r) => r.toJSON()), mode);
      }
      const failing = ["SELECT 1", "SELECT * FROM nowhere", "SELECT 2"];
      const error = await client.batch(failing, "read").then(() => undefined, (e) => e);
      const expected = await file.batch(failing, "read").then(() => undefined, (e) => e);
      assert.equal(error?.code, "SQLITE_ERROR");
      assert.equal(error?.code, expected?.code);
      assert.equal(error?.statementIndex, 1);
      assert.equal(error?.statementIndex, expected?.statementIndex);
      assert.match(error?.message, /no such table: nowhere/);
    });

    it("keeps a read transaction on one snapshot across requests while newer ones are served", async () => {
      const client = http.get("number")!;
      const before = (await client.execute("SELECT count(*) AS n FROM items")).rows[0]!.n as number;
      const tx = await client.transaction("read");
      assert.equal((await tx.execute("SELECT count(*) AS n FROM items")).rows[0]!.n, before);
      // The source changes and the replica moves to the new snapshot while the transaction is open.
      const writer = createClient({ url: `file:${s.path}` });
      await writer.execute("INSERT INTO items (name, category, price, qty) VALUES ('new', 'c', 1, 1)");
      writer.close();
      const sequence = await s.sync();
      await s.replica.refresh(1);
      assert.equal(s.replica.sequence, sequence);
      assert.equal((await client.execute("SELECT count(*) AS n FROM items")).rows[0]!.n, before + 1);
      assert.equal(
        (await tx.execute("SELECT count(*) AS n FROM items")).rows[0]!.n,
        before,
        "still its snapshot",
      );
      assert.equal(
        (await tx.batch(["SELECT count(*) AS n FROM items", "SELECT max(id) AS m FROM items"]))[0]!.rows[0]!
          .n,
        before,
      );
      await tx.commit();
      assert.equal(tx.closed, true);
      const next = await client.transaction("read");
      assert.equal((await next.execute("SELECT count(*) AS n FROM items")).rows[0]!.n, before + 1);
      await next.rollback();
    });

    it("refuses every write with the error a read-only libSQL database gives, and writes no file", async () => {
      const client = http.get("bigint")!;
      const file = s.files.get("bigint")!;
      for (
        const sql of [
          "INSERT INTO items (name, category) VALUES ('x', 'y')",
          "DELETE FROM items",
          "CREATE TABLE t (x)",
        ]
      ) {
        const got = await client.execute(sql).then(() => undefined, (e) => e);
        const want = await file.execute(sql).then(() => undefined, (e) => e);
        assert.equal(got?.code, "SQLITE_READONLY", sql);
        assert.equal(got?.message, want?.message, sql);
      }
      const write = await client.transaction("write").then((tx) => tx.execute("SELECT 1")).then(
        () => undefined,
        (e) => e,
      );
      assert.equal(write?.code, "SQLITE_READONLY");
      const batch = await client.batch(["SELECT 1"], "write").then(() => undefined, (e) => e);
      assert.equal(batch?.code, "SQLITE_READONLY");
      const migrate = await client.migrate(["CREATE TABLE m (x)"]).then(() => undefined, (e) => e);
      assert.ok(migrate?.code === "SQLITE_AUTH" || migrate?.code === "SQLITE_READONLY", migrate?.message);
      const target = join(s.dir, "copied.db");
      const vacuum = await client.execute(`VACUUM INTO '${target}'`).then(() => undefined, (e) => e);
      assert.equal(vacuum?.code, "SQLITE_READONLY");
      const attach = await client.execute(`ATTACH '${join(s.dir, "attached.db")}' AS a`).then(
        () => undefined,
        (e) => e,
      );
      assert.equal(attach?.code, "SQLITE_AUTH");
      const pragma = await client.execute("PRAGMA user_version = 7").then(() => undefined, (e) => e);
      assert.equal(pragma?.code, "SQLITE_AUTH");
      const multiple = await client.executeMultiple("SELECT 1; DELETE FROM items;").then(
        () => undefined,
        (e) => e,
      );
      assert.equal(multiple?.code, "SQLITE_READONLY");
      assert.equal(existsSync(target), false, "VACUUM INTO wrote no file");
      assert.equal(existsSync(join(s.dir, "attached.db")), false, "ATTACH created no file");
      // Still serving.
      assert.equal((await client.execute("SELECT count(*) AS n FROM kinds")).rows[0]!.n, 9n);
    });

    it("executeMultiple() runs a read script", async () => {
      await http.get("number")!.executeMultiple("SELECT 1; SELECT count(*) FROM items;");
    });
  });
}
