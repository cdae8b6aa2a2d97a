/**
 * A real browser for tests: Debian's chromium, headless, driven by playwright-core (both installed by
 * `.ci/run` and `scripts/test.sh`; nothing is downloaded), and a loopback site that serves the browser
 * bundle, test pages and a store, counting every request it answers.
 *
 * @module
 */

import { existsSync, rmSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { extname, join, normalize } from "node:path";
import process from "node:process";
import { getRequestListener } from "@hono/node-server";
import * as esbuild from "esbuild";
import { type Browser, type BrowserContext, chromium } from "playwright-core";
import { buildBrowser } from "../../scripts/build_browser.ts";
import { createApp } from "../../src/server/app.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { ROOT } from "./run.ts";
import { makeTempDir } from "./temp.ts";

/** Where the browser is: `TESSERA_CHROMIUM`, else Debian's. */
export const CHROMIUM = process.env.TESSERA_CHROMIUM ?? "/usr/bin/chromium";

// Without the background-networking flags chromium keeps trying to reach hosts a closed network refuses.
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/** Starts headless chromium. Throws, naming the install step, when it is missing. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `The browser tests need Debian's chromium at ${CHROMIUM}: apt-get install chromium (or set TESSERA_CHROMIUM)`,
    );
  }
  return await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
}

/**
 * A persistent browser profile (its OPFS survives closing pages), in a new temporary directory, or in
 * `directory` to open a profile again after closing it.
 */
export async function launchProfile(
  directory?: string,
): Promise<{ context: BrowserContext; directory: string }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `The browser tests need Debian's chromium at ${CHROMIUM}: apt-get install chromium (or set TESSERA_CHROMIUM)`,
    );
  }
  directory ??= await makeTempDir("chromium-profile");
  const context = await chromium.launchPersistentContext(directory, {
    executablePath: CHROMIUM,
    args: FLAGS,
    headless: true,
  });
  return { context, directory };
}

let built: Promise<string> | undefined;

/**
 * The browser bundle (`deno task build:browser`), built once per test process into a temporary directory
 * that is removed when the process exits.
 */
export function browserBundle(): Promise<string> {
  built ??= makeTempDir("browser-bundle").then(async (dir) => {
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    return (await buildBrowser({ out: join(dir, "b") })).directory;
  });
  return built;
}

/**
 * Bundles a test's own page module (`entry`, relative to the project) for the browser into `outfile`; the
 * page imports what it needs from the project's sources directly.
 */
export async function bundlePageModule(entry: string, outfile: string): Promise<void> {
  try {
    await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: "browser",
      format: "esm",
      target: "es2022",
      logLevel: "silent",
    });
  } finally {
    await esbuild.stop();
  }
}

/** One request the site answered. */
export interface SiteRequest {
  method: string;
  path: string;
  status: number;
}

/** Options of {@linkcode startSite}. */
export interface SiteOptions {
  /** URL path prefix → directory served under it, e.g. `{ "/dist/": bundleDir }`. */
  directories?: Record<string, string>;
  /** Pages by path, e.g. `{ "/": "<!doctype html>…" }`. */
  pages?: Record<string, string>;
  /** Answers what the files and pages do not (a store's object endpoint); `undefined` means 404. */
  fetch?: ((request: Request) => Response | undefined | Promise<Response | undefined>) | undefined;
  /** Sends COOP and COEP, so pages are cross-origin isolated (SharedArrayBuffer, the offload worker). */
  isolated?: boolean;
  /** Lets pages of any origin load the directories' files (`Access-Control-Allow-Origin: *`), as a
   * sandboxed iframe (an opaque origin) needs. */
  cors?: boolean;
}

/** A loopback site. */
export interface Site {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Every request answered, in order. */
  requests: SiteRequest[];
  /** Forgets the requests so far. */
  reset(): void;
  stop(): Promise<void>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
};

/** Serves pages, directories and a fetch handler on 127.0.0.1, and records every request. */
export async function startSite(options: SiteOptions): Promise<Site> {
  const requests: SiteRequest[] = [];
  const isolation: Record<string, string> = options.isolated
    ? { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" }
    : {};
  const answer = async (request: Request): Promise<Response> => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    const page = options.pages?.[path];
    if (page !== undefined) {
      return new Response(page, {
        headers: { "content-type": TYPES[".html"]!, "cache-control": "no-store" },
      });
    }
    for (const [prefix, directory] of Object.entries(options.directories ?? {})) {
      if (!path.startsWith(prefix)) continue;
      const relative = normalize(path.slice(prefix.length));
      if (relative.startsWith("..") || relative.startsWith("/")) return new Response("", { status: 404 });
      const file = join(directory, relative);
      const info = await stat(file).catch(() => undefined);
      if (!info?.isFile()) continue;
      return new Response(await readFile(file), {
        headers: {
          "content-type": TYPES[extname(file)] ?? "application/octet-stream",
          "cache-control": "no-store",
          ...(options.cors ? { "access-control-allow-origin": "*" } : {}),
        },
      });
    }
    return (await options.fetch?.(request)) ?? new Response("not found", { status: 404 });
  };
  const listener = getRequestListener(async (request) => {
    const response = await answer(request);
    requests.push({ method: request.method, path: new URL(request.url).pathname, status: response.status });
    if (!options.isolated) return response;
    const headers = new Headers(response.headers);
    for (const [name, value] of Object.entries(isolation)) headers.set(name, value);
    return new Response(response.body, { status: response.status, headers });
    // The runtime's own Request and Response stay global: Bun.serve, in the same process, refuses others.
  }, { overrideGlobalObjects: false });
  const server: Server = createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("The test site has no TCP port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    reset: () => void requests.splice(0),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/**
 * A site's `fetch` for `store`'s objects as the replica server's objects endpoint serves them
 * (`/v1/objects/<key>`, public), for the pointers and manifests of `databases`. With `noStore`, every answer
 * says `no-store`, so the browser's HTTP cache cannot stand in for a cache a test counts downloads of.
 */
export function objectsEndpoint(
  store: BlobStore,
  databases: readonly string[],
  options: { noStore?: boolean } = {},
): (request: Request) => Promise<Response> {
  const app = createApp({ databases: {}, objects: { store, databases, public: true } });
  return async (request) => {
    const response = await app.fetch(request);
    if (!options.noStore) return response;
    const headers = new Headers(response.headers);
    headers.set("cache-control", "no-store");
    return new Response(response.body, { status: response.status, headers });
  };
}
