/**
 * The parent's side of a reader process (`_reader_main.ts`): start it with the runtime we run on, begin its
 * read transaction, ask it for pages, end it. Requests are answered in order, so concurrent reads queue.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import process from "node:process";

/** What the reader saw when its read transaction began. */
export interface ReaderBegin {
  /** SQLite's journal mode, lower case ("wal", "delete", ...). */
  mode: string;
  pageSize: number;
  pageCount: number;
}

interface Waiter {
  resolve: (frame: { kind: number; payload: Uint8Array }) => void;
  reject: (error: Error) => void;
}

// Resolved when a reader starts, not at import: a module imported from a non-file URL (a registry, a
// bundle) still loads, and only the write side, which needs the reader, says why it cannot run.
function readerScript(): string {
  const url = new URL("./_reader_main.ts", import.meta.url);
  if (url.protocol !== "file:") {
    throw new Error(
      `the reader process needs the module on a local disk (it runs ${url.href} as a script): ` +
        "install the package locally to sync or replicate",
    );
  }
  return fileURLToPath(url);
}

/** One reader process: started idle, then one read transaction, then it exits. */
export class ReaderProcess {
  readonly #child: ChildProcess;
  readonly #ready: Promise<void>;
  readonly #waiters: Waiter[] = [];
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #failure: Error | undefined;
  #stderr = "";

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout?.on("data", (chunk: Uint8Array) => this.#receive(chunk));
    child.stderr?.on("data", (chunk: Uint8Array | string) => {
      if (this.#stderr.length < 4096) this.#stderr += String(chunk);
    });
    child.on("error", (error) => this.#fail(new Error(`the reader process did not start: ${error.message}`)));
    child.on("close", (code, signal) => {
      const how = signal ? `signal ${signal}` : `code ${code}`;
      const said = this.#stderr.trim().split("\n").slice(-3).join(" ").slice(0, 600);
      this.#fail(new Error(`the reader process exited (${how})${said ? `: ${said}` : ""}`));
    });
    // A stdin that closes under us (the process died) must not become an unhandled error event.
    child.stdin?.on("error", () => {});
    this.#ready = this.#next().then((frame) => {
      this.#json(frame);
    });
    this.#ready.catch(() => {});
    this.#hold(false);
  }

  /** Starts a reader process for `path`; it holds nothing of the database until {@linkcode begin}. */
  static start(path: string, busyTimeoutMs: number): ReaderProcess {
    const [command, args] = readerCommand();
    const child = spawn(command, [...args, readerScript(), path, String(busyTimeoutMs)], {
      stdio: ["pipe", "pipe", "pipe"],
      env: process.env,
    });
    return new ReaderProcess(child);
  }

  /** Opens the database read-only and starts the read transaction. */
  async begin(): Promise<ReaderBegin> {
    this.#hold(true);
    await this.#ready;
    const answer = this.#json(await this.#ask({ op: "begin" })) as Partial<ReaderBegin>;
    if (
      typeof answer.mode !== "string" || !Number.isSafeInteger(answer.pageSize) ||
      !Number.isSafeInteger(answer.pageCount)
    ) {
      throw new Error("the reader process answered an unexpected begin");
    }
    return answer as ReaderBegin;
  }

  /** `count` pages from page `first` (1-based), end to end. */
  async read(first: number, count: number): Promise<Uint8Array> {
    const frame = await this.#ask({ op: "read", first, count });
    if (frame.kind !== 1) this.#json(frame);
    return frame.payload;
  }

  /** Ends the read transaction; the process exits. */
  async end(): Promise<void> {
    this.#json(await this.#ask({ op: "end" }));
    this.#hold(false);
  }

  /** Stops the process wherever it is; its transaction ends with it. */
  kill(): void {
    this.#fail(new Error("the reader process was stopped"));
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGKILL");
    this.#hold(false);
  }

  #ask(request: Record<string, unknown>): Promise<{ kind: number; payload: Uint8Array }> {
    const answer = this.#next();
    if (!this.#failure) this.#child.stdin?.write(JSON.stringify(request) + "\n");
    return answer;
  }

  #next(): Promise<{ kind: number; payload: Uint8Array }> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #json(frame: { kind: number; payload: Uint8Array }): unknown {
    if (frame.kind !== 0) throw new Error("the reader process answered pages where a message was due");
    const value = JSON.parse(new TextDecoder().decode(frame.payload)) as { error?: { message?: string } };
    if (value.error) throw new Error(String(value.error.message ?? "unknown error"));
    return value;
  }

  // Pipe chunks are kept as they come and joined only once a frame is whole, so a large frame costs one
  // copy rather than one per chunk.
  #receive(chunk: Uint8Array): void {
    // Copied: a chunk may be a view of a read buffer the runtime reuses (under Deno, keeping the view
    // corrupted later frames).
    this.#chunks.push(new Uint8Array(chunk));
    this.#buffered += chunk.length;
    while (this.#buffered >= 4) {
      const length = new DataView(this.#peek(4).buffer).getUint32(0);
      if (this.#buffered - 4 < length) return;
      const frame = this.#take(4 + length);
      const waiter = this.#waiters.shift();
      if (waiter) waiter.resolve({ kind: frame[4] as number, payload: frame.subarray(8) });
    }
  }

  // The first `n` buffered bytes, joined (they stay buffered).
  #peek(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array;
    if (first.length >= n) return first.slice(0, n);
    return this.#join(n, false);
  }

  // Removes and returns the first `n` buffered bytes.
  #take(n: number): Uint8Array {
    this.#buffered -= n;
    return this.#join(n, true);
  }

  #join(n: number, remove: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    let i = 0;
    while (at < n) {
      const chunk = this.#chunks[i] as Uint8Array;
      const part = Math.min(chunk.length, n - at);
      out.set(chunk.subarray(0, part), at);
      at += part;
      if (!remove) i++;
      else if (part === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(part);
    }
    return out;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#failure);
  }

  // An idle spare must not keep the process alive; one in use must, or a caller awaiting its answer could
  // see the process exit under it.
  #hold(on: boolean): void {
    const handles = [
      this.#child,
      this.#child.stdin,
      this.#child.stdout,
      this.#child.stderr,
    ] as unknown as ({ ref?: () => void; unref?: () => void } | null)[];
    for (const handle of handles) {
      try {
        if (on) handle?.ref?.();
        else handle?.unref?.();
      } catch {
        // Not every runtime lets every stream be (un)referenced; the child still ends with its stdin.
      }
    }
  }
}

// The runtime we run on runs the reader too: Deno (all permissions; the reader is our own code), Bun, or
// Node (which needs its type stripping for a .ts file).
function readerCommand(): [string, string[]] {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.deno) return [process.execPath, ["run", "--allow-all", "--no-prompt", "--quiet"]];
  if (versions.bun) return [process.execPath, []];
  return [process.execPath, ["--experimental-strip-types", "--no-warnings"]];
}
