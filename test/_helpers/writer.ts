/**
 * Starts test/_helpers/writer_main.ts as a separate process under the runtime running the tests.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { isDeno, ROOT } from "./run.ts";

/** A running writer process. */
export interface WriterProcess {
  /** The last transaction number it reported committed. */
  readonly committed: number;
  /** Resolves once it has committed at least `k` transactions. */
  waitFor(k: number): Promise<void>;
  /** Asks it to stop, waits for it to exit, and returns the last committed number. */
  stop(): Promise<number>;
}

/** Options of {@linkcode startWriter}. */
export interface WriterOptions {
  mode: "wal" | "delete";
  count?: number;
  payload?: number;
  pauseMs?: number;
}

/** Starts a writer on `path` and waits until its schema exists. */
export async function startWriter(path: string, options: WriterOptions): Promise<WriterProcess> {
  const script = "test/_helpers/writer_main.ts";
  const args = [path, "--mode", options.mode, "--count", String(options.count ?? 1_000_000)];
  if (options.payload !== undefined) args.push("--payload", String(options.payload));
  if (options.pauseMs !== undefined) args.push("--pause-ms", String(options.pauseMs));
  const child: ChildProcess = spawn(
    process.execPath,
    isDeno ? ["run", "-A", script, ...args] : [script, ...args],
    {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  let committed = 0;
  let ready = false;
  let stderr = "";
  let partial = "";
  const waiters: { k: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  child.stderr?.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  child.stdout?.on("data", (d: Uint8Array) => {
    partial += new TextDecoder().decode(d);
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "ready") ready = true;
      const m = /^committed (\d+)$/.exec(line);
      if (m) committed = Number(m[1]);
    }
    for (const w of [...waiters]) {
      if ((w.k === 0 && ready) || (w.k > 0 && committed >= w.k)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  void exited.then((code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`writer exited (${code}) early: ${stderr}`));
  });
  const waitFor = (k: number) =>
    (k === 0 && ready) || (k > 0 && committed >= k)
      ? Promise.resolve()
      : new Promise<void>((resolve, reject) => waiters.push({ k, resolve, reject }));
  await waitFor(0);
  return {
    get committed() {
      return committed;
    },
    waitFor,
    async stop() {
      child.stdin?.end();
      child.kill("SIGTERM");
      const code = await exited;
      if (code !== 0 && code !== null) throw new Error(`writer failed (${code}): ${stderr}`);
      return committed;
    },
  };
}

/** Options of {@linkcode makeDb}. */
export interface MakeDbOptions {
  /** The journal mode. @default {"delete"} */
  mode?: "wal" | "delete";
  /** Bytes of random payload in each row. @default {the writer's} */
  payload?: number;
}

/**
 * Creates (or extends) the database at `path`: a writer process commits `rows` transactions of one row
 * each, then stops.
 */
export async function makeDb(path: string, rows: number, options: MakeDbOptions = {}): Promise<void> {
  const writer = await startWriter(path, {
    mode: options.mode ?? "delete",
    count: rows,
    ...(options.payload === undefined ? {} : { payload: options.payload }),
  });
  await writer.waitFor(rows);
  await writer.stop();
}
