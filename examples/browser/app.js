// The example page: opens a Tessera replica in the browser, lists its tables, runs the query typed in the
// box, and shows how fresh the snapshot is, live. The browser bundle (`deno task build:browser`) sits in
// ./tessera/ beside this file; `serve.ts` serves both, with a store's objects.
//
// Which store and database: `?store=URL&db=NAME` in the address, else ./config.json ({"store", "database"}).
// A store is read with HttpStore (a static host, a CDN, a public bucket, `tessera serve --objects`).

// The bundle is served beside the page, not kept in the repository: imported by a name tools do not resolve.
const BUNDLE = "./tessera/tessera.js";
const { HttpStore, OpfsChunkCache, openReplica } = await import(BUNDLE);

const $ = (id) => document.getElementById(id);
const MAX_ROWS_SHOWN = 500;

let replica;
let ticker;
let cacheTicker;
// Reads the same OPFS directory the replica's cache keeps its chunks in (openReplica's default).
const opfs = OpfsChunkCache.available() ? new OpfsChunkCache() : undefined;
let shownSequence = 0;

async function settings() {
  const params = new URLSearchParams(location.search);
  let config = {};
  if (!params.has("store")) {
    const response = await fetch("config.json", { cache: "no-store" }).catch(() => undefined);
    if (response?.ok) config = await response.json();
  }
  return {
    store: params.get("store") ?? config.store ?? "",
    database: params.get("db") ?? config.database ?? "",
  };
}

async function open(storeUrl, database) {
  close();
  setState("Opening…");
  const started = performance.now();
  const store = new HttpStore(new URL(storeUrl, location.href).href);
  replica = await openReplica(database, { store, pollIntervalMs: 1000 });
  const opened = performance.now() - started;
  setState(`Open in ${opened.toFixed(0)} ms.`, "fresh");
  replica.on("snapshot", () => void showTables());
  replica.on("error", ({ error }) => setState(`Check failed: ${error.message}`, "failing"));
  await showTables();
  showFreshness();
  ticker = setInterval(showFreshness, 250);
  cacheTicker = setInterval(showCache, 2000);
  void showCache();
  globalThis.tesseraExample = { replica, opened };
  document.body.dataset.state = "open";
}

function close() {
  clearInterval(ticker);
  clearInterval(cacheTicker);
  replica?.close();
  replica = undefined;
}

function showFreshness() {
  if (!replica) return;
  const status = replica.status();
  $("sequence").textContent = String(status.sequence);
  $("ctime").textContent = new Date(status.snapshotCtime).toLocaleString();
  $("lag").textContent = `≤ ${formatMs(status.lagMs)}`;
  $("checked").textContent = status.lastCheckMs ? `${formatMs(Date.now() - status.lastCheckMs)} ago` : "–";
  const memory = status.memory;
  $("chunks").textContent = `${memory.chunks} in memory (${formatBytes(memory.chunkBytes)})`;
  if (status.consecutiveFailures === 0) setState("Following the store.", "fresh");
  if (status.sequence !== shownSequence) {
    shownSequence = status.sequence;
    document.body.dataset.sequence = String(status.sequence);
  }
}

async function showCache() {
  if (!opfs) {
    $("cache").textContent = "memory only (no OPFS here)";
    return;
  }
  const { chunks, bytes } = await opfs.usage();
  $("cache").textContent = opfs.disabledReason
    ? `memory only (${opfs.disabledReason})`
    : `OPFS: ${chunks} chunks (${formatBytes(bytes)})`;
}

async function showTables() {
  if (!replica) return;
  const result = await replica.execute(
    "SELECT name, type FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
  );
  const list = $("tables");
  list.replaceChildren();
  for (const row of result.rows) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = String(row.name);
    button.addEventListener("click", () => {
      $("sql").value = `SELECT * FROM "${String(row.name).replaceAll('"', '""')}" LIMIT 100`;
      void runQuery();
    });
    const kind = document.createElement("small");
    kind.textContent = String(row.type);
    item.append(button, kind);
    list.append(item);
  }
  document.body.dataset.tables = String(result.rows.length);
}

async function runQuery() {
  if (!replica) return;
  const sql = $("sql").value;
  $("error").hidden = true;
  const started = performance.now();
  try {
    const result = await replica.execute(sql);
    const ms = performance.now() - started;
    $("timing").textContent = `${result.rows.length} row${result.rows.length === 1 ? "" : "s"} in ${
      ms.toFixed(1)
    } ms`;
    $("results").replaceChildren(table(result));
    document.body.dataset.ran = String(Number(document.body.dataset.ran ?? 0) + 1);
  } catch (error) {
    $("results").replaceChildren();
    $("timing").textContent = "";
    $("error").textContent = `${error.code ? `${error.code}: ` : ""}${error.message}`;
    $("error").hidden = false;
    document.body.dataset.ran = String(Number(document.body.dataset.ran ?? 0) + 1);
  }
}

function table(result) {
  const element = document.createElement("table");
  const head = element.createTHead().insertRow();
  for (const name of result.columns) {
    const th = document.createElement("th");
    th.textContent = name;
    head.append(th);
  }
  const body = element.createTBody();
  for (const row of result.rows.slice(0, MAX_ROWS_SHOWN)) {
    const tr = body.insertRow();
    for (let i = 0; i < result.columns.length; i++) {
      const value = row[i];
      const td = tr.insertCell();
      if (value === null) {
        td.textContent = "NULL";
        td.className = "null";
      } else if (value instanceof ArrayBuffer) {
        td.textContent = `x'${
          [...new Uint8Array(value)].map((b) => b.toString(16).padStart(2, "0")).join("")
        }'`;
      } else {
        td.textContent = String(value);
        if (typeof value === "number" || typeof value === "bigint") td.className = "number";
      }
    }
  }
  if (result.rows.length > MAX_ROWS_SHOWN) {
    const tr = body.insertRow();
    const td = tr.insertCell();
    td.colSpan = result.columns.length;
    td.textContent = `… ${result.rows.length - MAX_ROWS_SHOWN} more rows not shown`;
  }
  return element;
}

function setState(text, kind = "") {
  $("state").textContent = text;
  $("state").className = `state ${kind}`;
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function formatBytes(bytes) {
  return bytes < 1 << 20 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

async function openFromForm(storeUrl, database) {
  try {
    await open(storeUrl, database);
  } catch (error) {
    setState(`${error.code ? `${error.code}: ` : ""}${error.message}`, "failing");
    document.body.dataset.state = "failed";
  }
}

$("source").addEventListener("submit", (event) => {
  event.preventDefault();
  void openFromForm($("store").value, $("database").value);
});
$("query").addEventListener("submit", (event) => {
  event.preventDefault();
  void runQuery();
});
$("sql").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    void runQuery();
  }
});

const initial = await settings();
$("store").value = initial.store;
$("database").value = initial.database;
if (initial.store && initial.database) await openFromForm(initial.store, initial.database);
