/**
 * Runs a TypeScript entry point of this repository in a child process under the runtime running the
 * tests (Deno or Bun), so every end-to-end test exercises the runtime under test.
 *
 * @module
 */

import { execFile, spawn } from "node:child_process";
import process from "node:process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root directory. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** What a finished child printed and how it ended. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** True under Deno, false under Bun. */
export const isDeno = "Deno" in globalThis;

/** The project's Deno, from npm, whichever runtime runs the tests. */
export const DENO = join(ROOT, "node_modules/deno/deno");

/**
 * Runs `script` (a path relative to the repository root) with `args` and waits for it to exit.
 *
 * @example
 * ```ts
 * import { runScript } from "./run.ts";
 * const result = await runScript("src/cli/main.ts", ["--version"]);
 * console.log(result.stdout); // tessera 0.1.0
 * ```
 */
export function runScript(
  script: string,
  args: string[],
  options: { env?: Record<string, string>; input?: Uint8Array; cwd?: string } = {},
): Promise<RunResult> {
  const argv = isDeno ? ["run", "-A", script, ...args] : [script, ...args];
  const child = spawn(process.execPath, argv, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  child.stdout.on("data", (d: Uint8Array) => out.push(d));
  child.stderr.on("data", (d: Uint8Array) => err.push(d));
  child.stdin.end(options.input ?? new Uint8Array(0));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      const text = (parts: Uint8Array[]) => new TextDecoder().decode(Buffer.concat(parts));
      resolve({ code, stdout: text(out), stderr: text(err) });
    });
  });
}

/**
 * Runs `sql` on the database at `path` with the sqlite3 CLI, as another program would; resolves to its
 * output, trimmed, and rejects with its error text.
 */
export function sqliteCli(path: string, sql: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "sqlite3",
      [path, sql],
      { maxBuffer: 64 * 1024 * 1024 },
      (
        error,
        stdout,
        stderr,
      ) => (error
        ? reject(new Error(`sqlite3 ${path}: ${stderr || error.message}`))
        : resolve(stdout.trim())),
    );
  });
}
