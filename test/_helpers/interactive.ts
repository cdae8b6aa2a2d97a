/**
 * A long-running child process under the runtime running the tests (as {@linkcode runScript} starts one),
 * talked to through its stdin and stdout: for `tessera shell` sessions and servers that print where they
 * listen.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { DENO, isDeno, ROOT } from "./run.ts";

/** Bounds each wait, so a broken child fails its test with its output instead of hanging the suite. */
const HANG_GUARD_MS = 60_000;

/** A running child. */
export interface Interactive {
  /** Writes `text` to the child's stdin. */
  write(text: string): void;
  /**
   * Waits until stdout, past everything earlier calls consumed, matches `pattern`; returns the output up to
   * the end of the match and consumes it.
   */
  next(pattern: RegExp): Promise<string>;
  /** Everything written to stdout so far, consumed or not. */
  stdout(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Closes stdin and waits for the exit code. */
  end(): Promise<number | null>;
  /** Resolves with the exit code once the child exits. */
  exited: Promise<number | null>;
  /** Kills the child (SIGTERM) unless it exited, and waits for it. */
  stop(): Promise<void>;
  /**
   * Sends `name` to the child through `process.kill`, so its exit code is its own (Deno's child_process
   * reports a child it was asked to kill as killed by the signal, whatever it exited with).
   */
  signal(name: "SIGTERM" | "SIGINT"): void;
}

/** How {@linkcode startInteractive} runs its child. */
export interface InteractiveOptions {
  /** Variables set for the child, over this process's own (or alone, with `inheritEnv: false`). */
  env?: Record<string, string>;
  /** Whether the child gets this process's environment. @default {true} */
  inheritEnv?: boolean;
  /** Runs the script under the project's Deno whatever runtime runs the tests, with these flags in place of
   * `-A` (permissions denied by default). */
  denoFlags?: string[];
}

/**
 * Starts `script` (relative to the repository root) with `args`, under Deno (`deno run -A`) or Bun, the
 * runtime running the tests, or under Deno with `denoFlags`.
 *
 * @example
 * ```ts
 * import { startInteractive } from "./interactive.ts";
 * const shell = startInteractive("src/cli/main.ts", ["shell", "app", "--store", "/tmp/backups"]);
 * shell.write("SELECT 1;\n");
 * console.log(await shell.next(/\(1 row\)\n/));
 * await shell.end();
 * ```
 */
export function startInteractive(
  script: string,
  args: string[],
  options: InteractiveOptions = {},
): Interactive {
  const { env = {}, inheritEnv = true, denoFlags } = options;
  const [command, argv] = denoFlags
    ? [DENO, ["run", ...denoFlags, script, ...args]]
    : isDeno
    ? [process.execPath, ["run", "-A", script, ...args]]
    : [process.execPath, [script, ...args]];
  const child: ChildProcess = spawn(command, argv, {
    cwd: ROOT,
    env: { ...(inheritEnv ? process.env : {}), NO_COLOR: "1", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let mark = 0;
  let wake = () => {};
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (text: string) => {
    out += text;
    wake();
  });
  child.stderr?.on("data", (text: string) => (err += text));
  child.stdin?.on("error", () => {});
  let done = false;
  const exited = new Promise<number | null>((resolve) => {
    child.on("close", (code) => {
      done = true;
      wake();
      resolve(code);
    });
    child.on("error", () => {
      done = true;
      wake();
      resolve(null);
    });
  });
  const next = async (pattern: RegExp): Promise<string> => {
    const started = Date.now();
    for (;;) {
      const rest = out.slice(mark);
      const match = pattern.exec(rest);
      if (match) {
        const end = mark + match.index + match[0].length;
        const got = out.slice(mark, end);
        mark = end;
        return got;
      }
      if (done || Date.now() - started > HANG_GUARD_MS) {
        throw new Error(
          `${script} ${done ? "exited" : "kept running"} without printing ${pattern}; its stdout after the ` +
            `last match:\n${rest}\nits stderr:\n${err}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  return {
    write: (text) => child.stdin?.write(text),
    next,
    stdout: () => out,
    stderr: () => err,
    end: async () => {
      child.stdin?.end();
      return await exited;
    },
    exited,
    signal: (name) => {
      if (!done && child.pid !== undefined) process.kill(child.pid, name);
    },
    stop: async () => {
      if (!done) child.kill("SIGTERM");
      await exited;
    },
  };
}
