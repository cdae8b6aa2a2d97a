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
 * The build writes `.tessera-bundle` into the directory too, and replaces only a directory that is new,
 * empty or holds that marker (or only the three files above): it refuses the project, a directory holding
 * it, anything inside `src/`, and any other directory, which it leaves untouched. It builds into a new
 * directory beside DIR and renames it into place, so a failed build keeps the previous bundle. A relative
 * `--out` is relative to the directory the task was run from.
 *
 * esbuild comes from npm: building downloads nothing.
 *
 * @module
 */

import {
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
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
/** The file every build writes into its directory: only a directory holding it is replaced by the next. */
export const MARKER_FILE = ".tessera-bundle";
/** Where the source names its worker, rewritten to the built worker's file. */
const WORKER_SOURCE_NAME = '"./_offload_worker.ts"';
/** What the bundle directory holds; one holding nothing else is a bundle from before the marker existed. */
const BUNDLE_FILES = [BUNDLE_FILE, WORKER_FILE, "sqlite3.wasm"];

const USAGE = `Usage: deno task build:browser [--out DIR] [--minify]

Builds src/web.ts for browsers: DIR/${BUNDLE_FILE} (an ES module), DIR/${WORKER_FILE} and DIR/sqlite3.wasm.

Options:
  --out DIR   where to write: a new or empty directory, or a bundle an earlier build wrote there (replaced
              whole); relative to the directory you ran the task in [default: dist/browser]
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

/** Options of {@linkcode buildBrowser}. */
export interface BuildBrowserOptions {
  /** The output directory, relative to the current directory. @default {"<project>/dist/browser"} */
  out?: string | undefined;
  /** Minify the modules. @default {false} */
  minify?: boolean | undefined;
  /** The sqlite-wasm binary copied beside the modules. @default {"node_modules/@sqlite.org/sqlite-wasm/dist/sqlite3.wasm"} */
  wasm?: string | undefined;
}

/** True when `path` is `parent` or inside it. */
function within(path: string, parent: string): boolean {
  const rel = relative(parent, path);
  return rel === "" || (!isAbsolute(rel) && rel !== ".." && !rel.startsWith(`..${sep}`));
}

/** `path` with its symbolic links resolved, as far as it exists. */
async function realPath(path: string): Promise<string> {
  const real = await realpath(path).catch(() => undefined);
  if (real !== undefined) return real;
  const parent = dirname(path);
  return parent === path ? path : join(await realPath(parent), basename(path));
}

/**
 * Refuses an output directory the build must not replace: the project, a directory holding it, anything
 * inside `src/`, a file, or a directory holding anything but an earlier bundle. Returns whether it exists.
 */
async function checkOut(directory: string): Promise<boolean> {
  const refuse = (why: string) => new Error(`Cannot build into ${directory}: ${why}`);
  const root = await realPath(ROOT);
  if (within(root, directory)) throw refuse("it holds the project; choose a new or empty directory");
  if (within(directory, join(root, "src"))) throw refuse("it is inside the project's sources");
  const info = await lstat(directory).catch(() => undefined);
  if (info === undefined) return false;
  if (!info.isDirectory()) throw refuse("it is not a directory");
  const entries = await readdir(directory, { withFileTypes: true });
  const bundleOnly = entries.every((e) => e.isFile() && BUNDLE_FILES.includes(e.name));
  if (!bundleOnly && !entries.some((e) => e.isFile() && e.name === MARKER_FILE)) {
    throw refuse(
      `it holds files a build did not write (a bundle directory holds ${MARKER_FILE}); ` +
        "choose a new or empty directory",
    );
  }
  return true;
}

/**
 * Builds the bundle into `out`, replacing the bundle an earlier build wrote there. It builds into a new
 * directory beside `out` and renames it into place, so a failed build leaves the earlier bundle as it was
 * and no half-built directory behind. It refuses a directory that holds anything else.
 *
 * @example
 * ```ts
 * import { buildBrowser } from "./build_browser.ts";
 * const built = await buildBrowser({ out: "/tmp/tessera-browser" });
 * console.log(built.files.map((f) => f.name)); // [ "tessera.js", "tessera-worker.js", "sqlite3.wasm" ]
 * ```
 */
export async function buildBrowser(options: BuildBrowserOptions = {}): Promise<BrowserBuild> {
  const directory = await realPath(resolve(options.out ?? join(ROOT, "dist/browser")));
  const existed = await checkOut(directory);
  const parent = dirname(directory);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(join(parent, `.${basename(directory)}.building-`));
  try {
    await writeBundle(staging, options);
    if (existed) {
      // Two renames: the old bundle steps aside, the new one takes its name, then the old one goes.
      const old = `${staging}.old`;
      await rename(directory, old);
      try {
        await rename(staging, directory);
      } catch (error) {
        await rename(old, directory);
        throw error;
      }
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(staging, directory);
    }
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  const files = [];
  for (const name of BUNDLE_FILES) {
    files.push({ name, bytes: (await stat(join(directory, name))).size });
  }
  return { directory, files };
}

/** Writes the modules, the wasm binary and the marker into `directory`, which exists and is empty. */
async function writeBundle(directory: string, options: BuildBrowserOptions): Promise<void> {
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
  const wasm = options.wasm ?? WASM;
  await copyFile(wasm, join(directory, "sqlite3.wasm")).catch((error: unknown) => {
    const { code, message } = error as { code?: string; message?: string };
    throw new Error(`Cannot copy sqlite-wasm's binary from ${wasm}: ${code ?? message}`);
  });
  await writeFile(
    join(directory, MARKER_FILE),
    "Written by deno task build:browser. The next build replaces this directory whole.\n",
  );
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
  if (values.out === "") {
    console.error(`build:browser: --out needs a directory\n\n${USAGE}`);
    process.exit(2);
  }
  // deno task and npm run start in the project's directory; INIT_CWD is where the user typed the command.
  const cwd = process.env.INIT_CWD || process.cwd();
  let built;
  try {
    built = await buildBrowser({
      out: values.out === undefined ? undefined : resolve(cwd, values.out),
      minify: values.minify,
    });
  } catch (error) {
    console.error(`build:browser: ${String((error as Error).message ?? error).replace(/\s*\n\s*/g, " ")}`);
    process.exit(1);
  }
  for (const { name, bytes } of built.files) {
    console.log(`${relative(cwd, join(built.directory, name))}  ${(bytes / 1024).toFixed(0)} KiB`);
  }
}
