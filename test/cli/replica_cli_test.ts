import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { formatTable } from "../../src/cli/_results.ts";
import { resultJson } from "../../src/replica/result_json.ts";
import { splitStatements } from "../../src/replica/statements.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { startInteractive } from "../_helpers/interactive.ts";
import { runScript } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const CLI = "src/cli/main.ts";
const ENV = { TESSERA_HOSTNAME: "cli-host", TESSERA_CONFIG: "" };

/** Every file under `dir`: its path, size, modification time and SHA-256, to prove nothing was written. */
async function treeState(dir: string): Promise<string[]> {
  const state: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const info = await stat(path);
    const sha = createHash("sha256").update(await readFile(path)).digest("hex");
    state.push(`${relative(dir, path)} ${info.size} ${info.mtimeMs} ${sha}`);
  }
  return state.sort();
}

const TABLE =
  `k  name                         big  note  data                                             score
-  ----------  --------------------  ----  -----------------------------------------------  -----
1  alpha           9007199254740993  NULL  x'00ff10'                                          1.5
2  two\\nlines                   -42  x     x'000102030405060708090a0b0c0d0e0f…' (20 bytes)    2.0
3  NULL        -9223372036854775808  NULL  NULL                                              NULL
(3 rows)
`;

const JSON_ROWS = '{"columns":["k","name","big","note","data","score"],"rows":[' +
  '{"k":1,"name":"alpha","big":"9007199254740993","note":null,"data":"AP8Q","score":1.5},' +
  '{"k":2,"name":"two\\nlines","big":-42,"note":"x","data":"AAECAwQFBgcICQoLDA0ODxAREhM=","score":2},' +
  '{"k":3,"name":null,"big":"-9223372036854775808","note":null,"data":null,"score":null}],"sequence":1}\n';

describe("tessera query and tessera shell", () => {
  let dir: string;
  let db: string;
  let store: string;
  let source: string;
  const sync = async () =>
    await syncDatabase(db, {
      stores: [new LocalStore(store)],
      hostname: "cli-host",
      spoolDir: join(dir, "spool"),
      chunkSize: 4096,
    });
  const tessera = (...args: string[]) => runScript(CLI, [...args, "--store", store], { env: ENV });

  before(async () => {
    dir = await makeTempDir("replica-cli");
    db = join(dir, "app.db");
    store = join(dir, "store");
    source = `tessera://cli-host${db}`;
    const client = createClient({ url: `file:${db}` });
    await client.executeMultiple(`
      CREATE TABLE t (k INTEGER PRIMARY KEY, name TEXT, big INTEGER, note TEXT, data BLOB, score REAL);
      INSERT INTO t VALUES (1, 'alpha', 9007199254740993, NULL, x'00ff10', 1.5);
      INSERT INTO t VALUES (2, 'two' || char(10) || 'lines', -42, 'x', x'000102030405060708090a0b0c0d0e0f10111213', 2.0);
      INSERT INTO t VALUES (3, NULL, -9223372036854775808, NULL, NULL, NULL);
      CREATE TABLE other (x TEXT);
      CREATE VIEW small AS SELECT k FROM t WHERE k < 3;
    `);
    client.close();
    assert.equal((await sync()).sequence, 1);
  });
  after(() => removeDir(dir));

  it("query prints an aligned table: NULL, x'hex' blobs cut at 16 bytes, integers exact", async () => {
    for (
      const options of [
        ["--engine", "wasm"],
        ["--engine", "native"],
        ["--load", "lazy"],
        ["--load", "lazy", "--memory", "0"],
        ["--load", "eager", "--memory", "1m"],
      ]
    ) {
      const result = await tessera("query", source, "SELECT * FROM t ORDER BY k", ...options);
      assert.equal(result.stderr, "", options.join(" "));
      assert.equal(result.code, 0, options.join(" "));
      assert.equal(result.stdout, TABLE, options.join(" "));
    }
  });

  it("query --json prints columns, rows as objects and the sequence, big integers as strings", async () => {
    const byUrl = await tessera("query", source, "SELECT * FROM t ORDER BY k", "--json");
    assert.equal(byUrl.code, 0, byUrl.stderr);
    assert.equal(byUrl.stdout, JSON_ROWS);
    // The same database named by host and path, and with every integer as a string.
    const byPath = await tessera(
      "query",
      "--source-path",
      db,
      "--hostname",
      "cli-host",
      "SELECT k, big FROM t WHERE k < 3 ORDER BY k",
      "--json",
      "--int-mode",
      "string",
    );
    assert.equal(byPath.code, 0, byPath.stderr);
    assert.equal(
      byPath.stdout,
      '{"columns":["k","big"],"rows":[{"k":"1","big":"9007199254740993"},{"k":"2","big":"-42"}],"sequence":1}\n',
    );
  });

  it("query runs several statements on one snapshot, one result each, and binds --arg", async () => {
    const several = await tessera(
      "query",
      source,
      "SELECT count(*) AS n FROM t; SELECT 'a;b' AS s",
      "--json",
    );
    assert.equal(several.code, 0, several.stderr);
    assert.equal(
      several.stdout,
      '{"columns":["n"],"rows":[{"n":3}],"sequence":1}\n{"columns":["s"],"rows":[{"s":"a;b"}],"sequence":1}\n',
    );
    const table = await tessera("query", source, "SELECT 1 AS one;", "SELECT 2.5 AS two");
    assert.equal(table.stdout, "one\n---\n  1\n(1 row)\n\ntwo\n---\n2.5\n(1 row)\n");
    const bound = await tessera("query", source, "SELECT name FROM t WHERE k = ?", "--arg", "1");
    assert.equal(bound.stdout, "name\n-----\nalpha\n(1 row)\n");
  });

  it("an SQL error exits 1 with SQLite's message, as text or as JSON", async () => {
    const text = await tessera("query", source, "SELECT * FROM missing_table");
    assert.equal(text.code, 1);
    assert.equal(text.stdout, "");
    assert.equal(text.stderr, "tessera: SQLITE_ERROR: no such table: missing_table\n");
    const json = await tessera("query", source, "SELEC 1", "--json");
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.stdout), {
      ok: false,
      error: { code: "SQLITE_ERROR", message: 'SQLITE_ERROR: near "SELEC": syntax error' },
    });
  });

  it("writes are refused as read-only, and not one file of the store changes", async () => {
    const before = await treeState(store);
    assert.ok(before.length > 2, before.join("\n"));
    for (
      const sql of [
        "INSERT INTO t (k) VALUES (100)",
        "UPDATE t SET name = 'changed'",
        "DELETE FROM t",
        "CREATE TABLE intruder (x)",
        "DROP TABLE other",
      ]
    ) {
      for (const engine of ["wasm", "native"]) {
        const result = await tessera("query", source, sql, "--engine", engine);
        assert.equal(result.code, 1, `${engine}: ${sql}`);
        assert.equal(result.stderr, "tessera: SQLITE_READONLY: attempt to write a readonly database\n", sql);
      }
    }
    assert.deepEqual(await treeState(store), before);
    const still = await tessera("query", source, "SELECT count(*) AS n FROM t", "--json");
    assert.equal(still.stdout, '{"columns":["n"],"rows":[{"n":3}],"sequence":1}\n');
  });

  it("an unknown database exits 3 (not found) with a message naming it", async () => {
    const result = await tessera("query", "nothing-here", "SELECT 1");
    assert.equal(result.code, 3);
    assert.match(
      result.stderr,
      /^tessera: No snapshot of database "nothing-here" in file:\/\/.*store: run `tessera sync` first.*\[NOT_FOUND\]\n$/,
    );
    const json = await tessera("query", "tessera://other-host/srv/app.db", "SELECT 1", "--json");
    assert.equal(json.code, 3);
    const body = JSON.parse(json.stdout);
    assert.equal(body.error.code, "NOT_FOUND");
    assert.match(body.error.message, /No snapshot of database "[0-9a-f]{4}-other-host%3A%2Fsrv%2Fapp\.db"/);
    const old = await tessera("query", source, "SELECT 1", "--sequence", "7");
    assert.equal(old.code, 3);
    assert.match(old.stderr, /\[NOT_FOUND\]/);
  });

  it("bad usage exits 2 with a hint", async () => {
    for (
      const args of [
        ["query", source],
        ["query", "SELECT 1"],
        ["query", source, "SELECT 1", "--engine", "turbo"],
        ["query", source, "SELECT 1", "--int-mode", "float"],
        ["query", source, "SELECT 1", "--load", "sometimes"],
        ["query", source, "SELECT 1", "--load", "lazy", "--engine", "native"],
        ["query", source, "SELECT 1", "--memory", "lots"],
        ["query", source, "SELECT ?; SELECT ?", "--arg", "1"],
        ["query", source, "SELECT 1", "--sequence", "0"],
        ["query", source, "SELECT 1", "--bogus"],
        ["shell", source, "extra"],
        ["shell", source, "--poll-interval", "soon"],
      ]
    ) {
      const result = await tessera(...args);
      assert.equal(result.code, 2, args.join(" "));
      assert.match(result.stderr, /^tessera: .*\nRun "tessera --help" for usage\.\n$/s, args.join(" "));
    }
  });

  it("--help describes both commands, and the main help lists them", async () => {
    const query = await runScript(CLI, ["query", "--help"]);
    assert.equal(query.code, 0);
    assert.match(query.stdout, /^Usage: tessera query SOURCE SQL/);
    assert.match(query.stdout, /--json one line per statement: \{"columns"/);
    const shell = await runScript(CLI, ["help", "shell"]);
    assert.match(shell.stdout, /^Usage: tessera shell SOURCE/);
    assert.match(shell.stdout, /\.refresh \[0\|1\|2\]/);
    const main = await runScript(CLI, ["--help"]);
    assert.match(main.stdout, /\n {2}query {5}Run SQL on a read replica/);
    assert.match(main.stdout, /\n {2}shell {5}A read-only SQL prompt/);
  });

  it("shell runs piped statements and dot-commands, stopping at .quit", async () => {
    const script = [
      "SELECT k, name",
      "  FROM t WHERE k = 1;",
      ".tables",
      ".schema other",
      ".status",
      ".refresh",
      "SELECT * FROM missing_table;",
      ".mode json",
      "SELECT count(*) AS n FROM small;",
      ".quit",
      "SELECT 'never run';",
    ].join("\n") + "\n";
    const result = await runScript(CLI, ["shell", source, "--store", store], {
      env: ENV,
      input: new TextEncoder().encode(script),
    });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stderr, "Error: SQLITE_ERROR: no such table: missing_table\n");
    const [query, status, rest] = splitAround(result.stdout, /database {8}.*\n[^]*?loading .*\n/);
    assert.equal(
      query,
      "k  name\n-  -----\n1  alpha\n(1 row)\nother\nsmall\nt\nCREATE TABLE other (x TEXT);\n",
    );
    assert.match(status, new RegExp(`^database {8}[0-9a-f]{4}-cli-host%3A.*app\\.db\\n`));
    assert.match(status, /\nsequence {8}1\n/);
    assert.match(status, /\nupdated {9}\d{4}-\d\d-\d\dT[\d:.]+Z\n/);
    assert.match(status, /\nlag {13}\d+ ms\n/);
    assert.match(status, /\nchecks {10}\d+\n/);
    assert.match(status, /\nnot modified {4}\d+\n/);
    assert.match(status, /\nlast error {6}none\n/);
    // A small database is loaded eagerly under the default cap.
    assert.match(status, /\nloading {9}eager; cap 67108864 bytes, 0 chunks fetched for queries/);
    assert.equal(rest, 'sequence 1\n{"columns":["n"],"rows":[{"n":2}],"sequence":1}\n');
  });

  it("shell at the end of its input runs a last statement without ';' and exits 0", async () => {
    const result = await runScript(CLI, ["shell", "--source", source, "--store", store, "--json"], {
      env: ENV,
      input: new TextEncoder().encode("-- a comment; then a statement\nSELECT 'a;b' AS s"),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '{"columns":["s"],"rows":[{"s":"a;b"}],"sequence":1}\n');
  });

  it("shell stays on its snapshot until .refresh 1 moves it to the one synced since", async () => {
    const shell = startInteractive(CLI, ["shell", source, "--store", store, "--poll-interval", "0"], {
      env: ENV,
    });
    try {
      const count = "SELECT count(*) AS n, max(k) AS last FROM t;\n";
      shell.write(count);
      assert.equal(await shell.next(/\(1 row\)\n/), "n  last\n-  ----\n3     3\n(1 row)\n");
      const client = createClient({ url: `file:${db}` });
      await client.execute("INSERT INTO t (k, name) VALUES (4, 'delta')");
      client.close();
      assert.equal((await sync()).sequence, 2);
      shell.write(count);
      assert.equal(await shell.next(/\(1 row\)\n/), "n  last\n-  ----\n3     3\n(1 row)\n");
      shell.write(".refresh 1\n");
      assert.equal(await shell.next(/sequence \d+\n/), "sequence 2\n");
      shell.write(count + "SELECT name FROM t WHERE k = 4;\n");
      assert.equal(await shell.next(/\(1 row\)\n/), "n  last\n-  ----\n4     4\n(1 row)\n");
      assert.equal(await shell.next(/\(1 row\)\n/), "name\n-----\ndelta\n(1 row)\n");
      // .quit ends the session while stdin is still open.
      shell.write(".quit\n");
      assert.equal(await shell.exited, 0, shell.stderr());
      assert.equal(shell.stderr(), "");
    } finally {
      await shell.stop();
    }
  });

  it("query --sequence and --manifest read an older snapshot; --cache keeps the chunks it fetched", async () => {
    const count = "SELECT count(*) AS n FROM t";
    const newest = await tessera("query", source, count, "--json");
    assert.equal(newest.stdout, '{"columns":["n"],"rows":[{"n":4}],"sequence":2}\n', newest.stderr);
    const first = await tessera("query", source, count, "--json", "--sequence", "1");
    assert.equal(first.stdout, '{"columns":["n"],"rows":[{"n":3}],"sequence":1}\n', first.stderr);
    const name = (await sync()).name;
    const key = `dbs/${name}/manifests/${"1".padStart(16, "0")}`;
    const byKey = await tessera("query", "--manifest", key, count, "--json");
    assert.equal(byKey.stdout, '{"columns":["n"],"rows":[{"n":3}],"sequence":1}\n', byKey.stderr);
    const cache = join(dir, "cache");
    const cached = await tessera(
      "query",
      "--name",
      name,
      "SELECT sum(length(data)) AS b FROM t",
      "--cache",
      cache,
    );
    assert.equal(cached.stdout, " b\n--\n23\n(1 row)\n", cached.stderr);
    assert.ok((await treeState(cache)).length > 0, "the cache directory holds the fetched chunks");
  });

  it("shell --no-auto-refresh and --poll-interval show in .status", async () => {
    const result = await runScript(
      CLI,
      ["shell", source, "--store", store, "--no-auto-refresh", "--poll-interval", "0", "--sequence", "1"],
      { env: ENV, input: new TextEncoder().encode(".status\n.refresh 2\n") },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\nauto-refresh {4}off\npolling {9}off \(a pinned snapshot\)\n/);
    assert.match(result.stdout, /\nsequence 1\n$/);
  });
});

/** `text` cut into what comes before the first match of `pattern`, the match, and what follows. */
function splitAround(text: string, pattern: RegExp): [string, string, string] {
  const match = pattern.exec(text);
  assert.ok(match, `no match of ${pattern} in:\n${text}`);
  return [text.slice(0, match.index), match[0], text.slice(match.index + match[0].length)];
}

describe("splitStatements()", () => {
  it("cuts at semicolons outside quotes, brackets and comments, and keeps an unfinished rest", () => {
    assert.deepEqual(
      splitStatements(`SELECT 'x;''y'; SELECT "a;b" FROM [c;d] -- e;f\n; /* g; */ SELECT \`h;\`; SELECT`),
      {
        statements: [`SELECT 'x;''y'`, `SELECT "a;b" FROM [c;d] -- e;f`, "/* g; */ SELECT `h;`"],
        rest: "SELECT",
      },
    );
  });

  it("drops comment-only statements, and reports an unclosed quote or comment as unfinished", () => {
    assert.deepEqual(splitStatements("-- only a comment\n; ;  /* and */ "), { statements: [], rest: "" });
    assert.deepEqual(splitStatements("SELECT 'open; still"), { statements: [], rest: "SELECT 'open; still" });
    assert.deepEqual(splitStatements("SELECT 1; /* open"), { statements: ["SELECT 1"], rest: "/* open" });
  });
});

describe("formatTable() and resultJson()", () => {
  const rows = (columns: string[], values: unknown[][]) => ({
    columns,
    rows: values.map((v) => Object.assign([...v], Object.fromEntries(columns.map((c, i) => [c, v[i]])))),
  });

  it("formatTable() escapes control characters and prints a header for no rows", () => {
    assert.equal(
      formatTable(rows(["a\tb"], [["x\u0001y"], ["é"]]) as never),
      "a\\tb\n------\nx\\x01y\né\n(2 rows)\n",
    );
    assert.equal(formatTable(rows(["n"], []) as never), "n\n-\n(0 rows)\n");
    assert.equal(formatTable(rows([], []) as never), "");
  });

  it("resultJson() keeps repeated columns apart and shows infinities as strings", () => {
    const blob = new Uint8Array([251, 255]).buffer;
    assert.equal(
      resultJson(rows(["a", "a", "a:2"], [[1n, Infinity, blob]]) as never, 9),
      '{"columns":["a","a:2","a:2:2"],"rows":[{"a":1,"a:2":"Infinity","a:2:2":"+/8="}],"sequence":9}\n',
    );
  });
});
