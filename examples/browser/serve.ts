/**
 * Serves the browser example: the page (index.html, app.js, style.css), the browser bundle under
 * `/tessera/` (built from the sources at start into a temporary directory of its own, removed when it
 * stops), and a store's objects under `/v1/objects/` with the replica server's caching headers, so the page
 * opens the database's replica in the browser and follows it.
 *
 * ```sh
 * deno task tessera sync app.db --store ./backups          # or tessera replicate, in another terminal
 * deno task example:browser --store ./backups --db app      # then open http://127.0.0.1:8080/
 * ```
 *
 * It refuses to start (exit 1, one line naming the store and the database) when the store holds no such
 * database yet: a page served before the first sync could only show NOT_FOUND, so sync first. A bad
 * `--db` or `--port` is a usage error (exit 2); a port in use is exit 1.
 *
 * The page is cross-origin isolated (COOP and COEP), so a lazy replica's large statements run in a worker.
 * Everything here is a static host's job but the objects endpoint's headers: copy index.html, app.js,
 * style.css and a bundle (`deno task build:browser --out DIR`, as `tessera/`) to any static host, point
 * `?store=` at a store served with the headers docs/SERVER.md lists, and the page works the same.
 *
 * @module
 */

import { rmSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { TesseraError } from "../../src/errors.ts";
import { pointerKey } from "../../src/manifest/keys.ts";
import { isDatabaseName } from "../../src/manifest/naming.ts";
import { describeUrl } from "../../src/net/http.ts";
import { createApp } from "../../src/server/app.ts";
import { listen, type Listening } from "../../src/server/serve.ts";
import { LocalStore } from "../../src/store/local.ts";
import { openStore } from "../../src/store/open.ts";
import type { BlobStore } from "../../src/store/types.ts";
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

/** The example's server: where it listens, and the bundle directory it built (removed by `close`). */
export interface ExampleServer extends Listening {
  /** The browser bundle served under `/tessera/`: a temporary directory of this server's own. */
  readonly bundle: string;
}

/** Options of {@linkcode serveExample}. */
export interface ServeExampleOptions {
  /** The store the database is synced to: a directory, `file:///dir` or `s3://bucket/prefix`. */
  store: string;
  /** The database's name in the store. */
  db: string;
  /** 0 picks a free port. @default {8080} */
  port?: number | undefined;
  /** @default {"127.0.0.1"} */
  hostname?: string | undefined;
}

/** Throws a `TypeError` (a usage error) unless `db` is a name a store can give a database. */
export function checkDatabase(db: string): void {
  if (!isDatabaseName(db)) {
    throw new TypeError(
      `--db ${JSON.stringify(db)} is not a database name a store gives (tessera ls --store STORE lists them)`,
    );
  }
}

/** Throws, naming the store and the database, unless `store` holds database `db` (its pointer). */
async function checkStored(store: BlobStore, where: string, db: string): Promise<void> {
  const key = pointerKey(db);
  const found = await store.head(key).catch((error: unknown) => {
    throw new Error(`Cannot read the store ${where}: ${(error as Error)?.message ?? error}`, {
      cause: error,
    });
  });
  if (found.status === "ok") return;
  if (store instanceof LocalStore && !(await stat(store.root).catch(() => undefined))?.isDirectory()) {
    throw new TesseraError("NOT_FOUND", `The store ${where} does not exist: sync a database to it first`);
  }
  throw new TesseraError(
    "NOT_FOUND",
    `The store ${where} holds no database "${db}" (no ${key}): sync it first ` +
      `(tessera sync FILE --store ${where} --name ${db}), or give a name tessera ls --store ${where} lists`,
  );
}

/**
 * Starts the example's server once the store is found to hold `db`; resolves once it listens. `close()`
 * stops it and removes its bundle.
 */
export async function serveExample(options: ServeExampleOptions): Promise<ExampleServer> {
  checkDatabase(options.db);
  const store = openStore(options.store);
  // A store URL's query may hold a token: never shown.
  await checkStored(store, describeUrl(options.store), options.db);
  const temporary = await mkdtemp(join(tmpdir(), "tessera-example-browser-"));
  const removeBundle = () => rm(temporary, { recursive: true, force: true });
  try {
    const bundle = (await buildBrowser({ out: join(temporary, "tessera") })).directory;
    const listening = await listen(exampleApp(store, options.db, bundle), {
      port: options.port ?? 8080,
      hostname: options.hostname ?? "127.0.0.1",
    }).catch((error: unknown) => {
      const where = `${options.hostname ?? "127.0.0.1"}:${options.port ?? 8080}`;
      const { name, code } = error as { name?: string; code?: string };
      if (name === "AddrInUse" || code === "EADDRINUSE") {
        throw new Error(`Cannot listen on ${where}: the port is in use; choose another with --port`);
      }
      throw new Error(`Cannot listen on ${where}: ${(error as Error)?.message ?? error}`, { cause: error });
    });
    return {
      hostname: listening.hostname,
      port: listening.port,
      url: listening.url,
      runtime: listening.runtime,
      bundle,
      close: async (closeOptions) => {
        await listening.close(closeOptions);
        await removeBundle();
      },
    };
  } catch (error) {
    await removeBundle();
    throw error;
  }
}

function exampleApp(store: BlobStore, db: string, bundle: string) {
  const app = createApp({ databases: {}, objects: { store, databases: [db], public: true } });
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
    new Response(JSON.stringify({ store: "/v1/objects", database: db }), {
      headers: { "content-type": "application/json", "cache-control": "no-cache" },
    }));
  app.get("/tessera/:name", (c) => {
    const name = c.req.param("name");
    if (!/^[a-z0-9-]+\.[a-z0-9]+$/.test(name)) return new Response("not found", { status: 404 });
    return file(join(bundle, name), ISOLATION);
  });
  return app;
}

/** `text` as a TCP port (decimal digits, 0 to 65535), else undefined. */
export function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
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
  const port = values.port === undefined ? 8080 : parsePort(values.port);
  if (port === undefined) {
    console.error(`example:browser: --port ${JSON.stringify(values.port)} is not a port number (0 to 65535)`);
    process.exit(2);
  }
  try {
    checkDatabase(values.db);
  } catch (error) {
    console.error(`example:browser: ${(error as Error).message}`);
    process.exit(2);
  }
  let server: ExampleServer;
  try {
    server = await serveExample({ store: values.store, db: values.db, port, hostname: values.host });
  } catch (error) {
    console.error(`example:browser: ${String((error as Error)?.message ?? error).replace(/\s*\n\s*/g, " ")}`);
    process.exit(1);
  }
  const bundle = server.bundle;
  // However the process ends, its bundle directory goes with it.
  process.once("exit", () => rmSync(dirname(bundle), { recursive: true, force: true }));
  console.log(`example:browser: open ${server.url}/ (database "${values.db}" from ${values.store})`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
