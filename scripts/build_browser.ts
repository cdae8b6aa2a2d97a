/**
 * Builds the browser bundle: `src/web.ts` as one ES module, the worker that runs a lazy replica's large
 * statements, and the sqlite-wasm binary beside them, in one directory a page serves as it is.
 *
 * ```sh
 * deno task build:browser                 # writes dist/browser/
 * deno task build:browser --out public/tessera --minify
 * ```
 *
 * What the directory holds:
 * - `tessera.js`: the web entry point's exports (`openReplica`, `HttpStore`, `S3Store`, `OpfsChunkCache`, …).
 * - `tessera-worker.js`: the offload worker; started only on cross-origin isolated pages (COOP and COEP),
 *   where `SharedArrayBuffer` exists.
 * - `sqlite3.wasm`: found by both modules at `new URL("sqlite3.wasm", import.meta.url)`, so it must stay
 *   beside them (serve it as `application/wasm`).
 *
 * esbuild comes from npm: building downloads nothing.
 *
 * @module
 */

import { copyFile, mkdir, readFile, rm, stat } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as esbuild from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WASM = join(ROOT, "node_modules/@sqlite.org/sqlite-wasm/dist/sqlite3.wasm");
/** The worker module's name in the bundle directory. */
export const WORKER_FILE = "tessera-worker.js";
/** The main module's name in the bundle directory. */
export const BUNDLE_FILE = "tessera.js";
/** Where the source names its worker, rewritten to the built worker's file. */
const WORKER_SOURCE_NAME = '"./_offload_worker.ts"';

const USAGE = `Usage: deno task build:browser [--out DIR] [--minify]

Builds src/web.ts for browsers: DIR/${BUNDLE_FILE} (an ES module), DIR/${WORKER_FILE} and DIR/sqlite3.wasm.

Options:
  --out DIR   where to write (replaced whole) [default: dist/browser]
  --minify    minify the modules
  -h, --help  show this help
`;

/** What {@linkcode buildBrowser} wrote. */
export interface BrowserBuild {
  /** The output directory, absolute. */
  directory: string;
  /** Each file written and its size in bytes. */
  files: { name: string; bytes: number }[];
}

/**
 * Builds the bundle into `out` (emptied first).
 *
 * @example
 * ```ts
 * import { buildBrowser } from "./build_browser.ts";
 * const built = await buildBrowser({ out: "/tmp/tessera-browser" });
 * console.log(built.files.map((f) => f.name)); // [ "tessera.js", "tessera-worker.js", "sqlite3.wasm" ]
 * ```
 */
export async function buildBrowser(
  options: { out?: string | undefined; minify?: boolean | undefined } = {},
): Promise<BrowserBuild> {
  const directory = resolve(options.out ?? join(ROOT, "dist/browser"));
  if (directory === ROOT || ROOT.startsWith(directory + "/")) {
    throw new Error(`Cannot build into ${directory}: it holds the project; choose an empty or new directory`);
  }
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
  let rewrote = 0;
  const workerName: esbuild.Plugin = {
    name: "tessera-worker-name",
    setup(build) {
      build.onLoad({ filter: /[\\/]replica[\\/]offload\.ts$/ }, async (args) => {
        const text = await readFile(args.path, "utf8");
        if (!text.includes(WORKER_SOURCE_NAME)) {
          throw new Error(
            `${args.path} no longer names its worker as ${WORKER_SOURCE_NAME}: update the build`,
          );
        }
        rewrote++;
        return { contents: text.replace(WORKER_SOURCE_NAME, `"./${WORKER_FILE}"`), loader: "ts" };
      });
    },
  };
  const common: esbuild.BuildOptions = {
    absWorkingDir: ROOT,
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    minify: options.minify ?? false,
    sourcemap: false,
    logLevel: "silent",
    legalComments: "none",
    plugins: [workerName],
  };
  try {
    await esbuild.build({ ...common, entryPoints: ["src/web.ts"], outfile: join(directory, BUNDLE_FILE) });
    await esbuild.build({
      ...common,
      entryPoints: ["src/replica/_offload_worker.ts"],
      outfile: join(directory, WORKER_FILE),
    });
  } finally {
    await esbuild.stop();
  }
  if (rewrote === 0) {
    throw new Error("The bundle does not hold src/replica/offload.ts: its worker is unnamed");
  }
  await copyFile(WASM, join(directory, "sqlite3.wasm"));
  const files = [];
  for (const name of [BUNDLE_FILE, WORKER_FILE, "sqlite3.wasm"]) {
    files.push({ name, bytes: (await stat(join(directory, name))).size });
  }
  return { directory, files };
}

if (import.meta.main) {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        out: { type: "string" },
        minify: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`build:browser: ${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const built = await buildBrowser({ out: values.out, minify: values.minify });
  for (const { name, bytes } of built.files) {
    console.log(`${relative(process.cwd(), join(built.directory, name))}  ${(bytes / 1024).toFixed(0)} KiB`);
  }
}
