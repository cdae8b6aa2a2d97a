/**
 * Serves the browser example: the page (index.html, app.js, style.css), the browser bundle under
 * `/tessera/` (built from the sources at start), and a store's objects under `/v1/objects/` with the
 * replica server's caching headers, so the page opens the database's replica in the browser and follows it.
 *
 * ```sh
 * deno task tessera sync app.db --store ./backups          # or tessera replicate, in another terminal
 * deno task example:browser --store ./backups --db app      # then open http://127.0.0.1:8080/
 * ```
 *
 * The page is cross-origin isolated (COOP and COEP), so a lazy replica's large statements run in a worker.
 * Everything here is a static host's job but the objects endpoint's headers: copy index.html, app.js,
 * style.css and `dist/browser/` (as `tessera/`) to any static host, point `?store=` at a store served with
 * the headers docs/SERVER.md lists, and the page works the same.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createApp } from "../../src/server/app.ts";
import { listen } from "../../src/server/serve.ts";
import { openStore } from "../../src/store/open.ts";
import { buildBrowser } from "../../scripts/build_browser.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const PAGE_FILES: Record<string, string> = {
  "/": "index.html",
  "/index.html": "index.html",
  "/app.js": "app.js",
  "/style.css": "style.css",
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  wasm: "application/wasm",
};
// Cross-origin isolation: SharedArrayBuffer, so the offload worker can run.
const ISOLATION = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
};

const USAGE = `Usage: deno task example:browser --store STORE --db NAME [--port N] [--host H]

Serves the browser example page, the browser bundle and STORE's objects (for database NAME) over HTTP.

Options:
  --store STORE  the store the database is synced to: a directory, file:///dir or s3://bucket/prefix
  --db NAME      the database's name in the store (as tessera sync --name gave it, or tessera ls shows)
  --port N       [default: 8080; 0 picks a free port]
  --host H       [default: 127.0.0.1]
  -h, --help     show this help
`;

/** Starts the example's server; resolves once it listens. */
export async function serveExample(
  options: { store: string; db: string; port?: number | undefined; hostname?: string | undefined },
) {
  const store = openStore(options.store);
  const bundle = (await buildBrowser({ out: join(HERE, "../../dist/browser") })).directory;
  const app = createApp({ databases: {}, objects: { store, databases: [options.db], public: true } });
  const file = async (path: string, extra: Record<string, string> = {}) => {
    const body = await readFile(path).catch(() => undefined);
    if (body === undefined) return new Response("not found", { status: 404 });
    const type = TYPES[path.slice(path.lastIndexOf(".") + 1)] ?? "application/octet-stream";
    return new Response(body, { headers: { "content-type": type, "cache-control": "no-cache", ...extra } });
  };
  for (const [path, name] of Object.entries(PAGE_FILES)) {
    app.get(path, () => file(join(HERE, name), ISOLATION));
  }
  app.get("/config.json", () =>
    new Response(JSON.stringify({ store: "/v1/objects", database: options.db }), {
      headers: { "content-type": "application/json", "cache-control": "no-cache" },
    }));
  app.get("/tessera/:name", (c) => {
    const name = c.req.param("name");
    if (!/^[a-z0-9.-]+$/.test(name)) return new Response("not found", { status: 404 });
    return file(join(bundle, name), ISOLATION);
  });
  return await listen(app, { port: options.port ?? 8080, hostname: options.hostname ?? "127.0.0.1" });
}

if (import.meta.main) {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        store: { type: "string" },
        db: { type: "string" },
        port: { type: "string" },
        host: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`example:browser: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!values.store || !values.db) {
    console.error(`example:browser: give --store and --db\n\n${USAGE}`);
    process.exit(2);
  }
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
    console.error(`example:browser: --port ${values.port} is not a port number`);
    process.exit(2);
  }
  const listening = await serveExample({ store: values.store, db: values.db, port, hostname: values.host });
  console.log(`example:browser: open ${listening.url}/ (database "${values.db}" from ${values.store})`);
  const stop = () => void listening.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
