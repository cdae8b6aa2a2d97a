/**
 * A Node child process running a test server, shared by the helpers that start real servers.
 *
 * The child runs under `node` from `PATH` whatever runtime runs the tests, so Deno's and Bun's differences in
 * `node:http` servers never matter. It cannot outlive the test process: {@linkcode NodeProcess.stop} kills
 * it, a `process.on("exit")` hook kills any left running, and `_exit_with_parent.cjs` (preloaded into the
 * child) exits when its stdin pipe closes, which also covers a test process killed outright.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

const WATCHDOG = fileURLToPath(new URL("./_exit_with_parent.cjs", import.meta.url));
const STDERR_LIMIT = 16 * 1024;
const STOP_GRACE_MS = 5_000;
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Default time a helper waits for its server to become ready. */
export const READY_TIMEOUT_MS = 20_000;

// SIGTERM rather than SIGKILL, so the child's exit hooks still clean up; stdin closing is the fallback.
function killAllRunning(): void {
  for (const child of running) child.kill("SIGTERM");
}

function unrefStream(stream: unknown): void {
  (stream as { unref?: () => void } | null)?.unref?.();
}

/** A running `node` child process with its stdout read line by line and its stderr kept for errors. */
export class NodeProcess {
  readonly name: string;
  #child: ChildProcess;
  #stderr = "";
  #partialLine = "";
  #lineListener: ((line: string) => void) | null = null;
  #exit: Promise<string>;
  #exited = false;

  /** Starts `node <args>`; `name` names the server in error messages. */
  constructor(name: string, args: string[]) {
    this.name = name;
    if (!exitHookInstalled) {
      process.on("exit", killAllRunning);
      exitHookInstalled = true;
    }
    this.#child = spawn("node", ["--require", WATCHDOG, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    running.add(this.#child);
    this.#child.stdout?.setEncoding("utf8");
    this.#child.stdout?.on("data", (text: string) => this.#onStdout(text));
    this.#child.stderr?.setEncoding("utf8");
    this.#child.stderr?.on("data", (text: string) => {
      this.#stderr = (this.#stderr + text).slice(-STDERR_LIMIT);
    });
    // An EPIPE on stdin only means the child is already gone; 'close' reports that.
    this.#child.stdin?.on("error", () => {});
    this.#exit = new Promise((resolve) => {
      this.#child.on("error", (error) => {
        this.#exited = true;
        running.delete(this.#child);
        resolve(`could not be started: ${error.message}`);
      });
      this.#child.on("close", (code, signal) => {
        this.#exited = true;
        running.delete(this.#child);
        resolve(signal === null ? `exit code ${code}` : `signal ${signal}`);
      });
    });
  }

  /** What the child wrote to stderr so far (the last 16 KiB). */
  get stderr(): string {
    return this.#stderr;
  }

  #onStdout(text: string): void {
    const lines = (this.#partialLine + text).split("\n");
    this.#partialLine = lines.pop() ?? "";
    for (const line of lines) this.#lineListener?.(line);
  }

  #failure(what: string): Error {
    const stderr = this.#stderr.trim();
    return new Error(`Cannot start ${this.name}: ${what}${stderr === "" ? "" : `; its stderr:\n${stderr}`}`);
  }

  /** Returns the first stdout line that is a JSON object, the server's report that it is listening. */
  async readyLine(timeoutMs: number = READY_TIMEOUT_MS): Promise<Record<string, unknown>> {
    return await this.#race((signal) =>
      new Promise((resolve) => {
        this.#lineListener = (line) => {
          let value: unknown = null;
          try {
            value = JSON.parse(line);
          } catch {
            return;
          }
          if (value !== null && typeof value === "object" && !signal.aborted) {
            resolve(value as Record<string, unknown>);
          }
        };
      }), timeoutMs);
  }

  /** Waits until `url` answers an HTTP request with any status. */
  async waitForHttp(url: string, timeoutMs: number = READY_TIMEOUT_MS): Promise<void> {
    await this.#race(async (signal) => {
      while (!signal.aborted) {
        try {
          const response = await fetch(url, { signal });
          await response.body?.cancel();
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }, timeoutMs);
  }

  /** Runs `work` until it settles; kills the child and throws, with its stderr, if it exits or times out. */
  async #race<T>(work: (signal: AbortSignal) => Promise<T>, timeoutMs: number): Promise<T> {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.#failure(`not ready after ${timeoutMs} ms`)), timeoutMs);
    });
    const exited = this.#exit.then((how): never => {
      throw this.#failure(`it exited (${how}) before it was ready`);
    });
    try {
      return await Promise.race([work(controller.signal), timedOut, exited]);
    } catch (error) {
      await this.stop();
      throw error;
    } finally {
      controller.abort();
      clearTimeout(timer);
      this.#lineListener = null;
    }
  }

  /** Lets the test runner exit while the child still runs; {@linkcode NodeProcess.stop} still works. */
  unref(): void {
    this.#child.unref();
    unrefStream(this.#child.stdin);
    unrefStream(this.#child.stdout);
    unrefStream(this.#child.stderr);
  }

  /** Kills the child (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    // Referenced again so the runtime waits for the exit event instead of ending with this promise pending.
    this.#child.ref();
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), STOP_GRACE_MS);
    try {
      await this.#exit;
    } finally {
      clearTimeout(timer);
    }
  }
}
