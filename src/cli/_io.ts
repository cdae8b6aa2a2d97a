/**
 * What a CLI command reads and writes, passed in so tests can run commands in-process.
 *
 * @module
 */

import process from "node:process";
import { errorMessage, TesseraError } from "../errors.ts";

/** The outside world of one CLI run. */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout(data: string | Uint8Array): void;
  stderr(text: string): void;
  /** Whether stderr is a terminal (progress goes there only then). */
  isTty: boolean;
}

/** Exit codes, documented in `tessera --help`. */
export const EXIT = Object.freeze({
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
});

/** A mistake in how a command was called: printed with the usage hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The process's own streams and environment. */
export function processIo(): CliIo {
  return {
    env: process.env,
    stdout: (data) => process.stdout.write(data),
    stderr: (text) => process.stderr.write(text),
    isTty: Boolean(process.stderr.isTTY),
  };
}

/** Prints an error the way every command does and returns the exit code. */
export function reportError(io: CliIo, error: unknown, json: boolean): number {
  if (error instanceof UsageError) {
    io.stderr(`tessera: ${error.message}\nRun "tessera --help" for usage.\n`);
    return EXIT.usage;
  }
  const code = error instanceof TesseraError ? error.code : "INTERNAL";
  const message = errorMessage(error);
  if (json) {
    io.stdout(JSON.stringify({ ok: false, error: { code, message } }) + "\n");
  } else {
    io.stderr(`tessera: ${message}${code === "INTERNAL" ? "" : ` [${code}]`}\n`);
  }
  return code === "NOT_FOUND" ? EXIT.notFound : EXIT.failure;
}
