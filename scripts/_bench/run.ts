/**
 * What the end-to-end benchmark scripts share: naming the runtime, printing a section, and removing the
 * work directory.
 *
 * @module
 */

import { existsSync } from "node:fs";
import process from "node:process";
import { removeDir } from "../../test/_helpers/temp.ts";

/** The runtime and engine the benchmark runs on, for its header. */
export function runtimeName(): string {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.deno) return `deno ${versions.deno} (V8 ${versions.v8}, TypeScript ${versions.typescript})`;
  if (versions.bun) return `bun ${versions.bun} (JavaScriptCore)`;
  return `node ${process.version}`;
}

/** Prints a section's lines followed by a blank line. */
export function print(lines: string[]): void {
  console.log([...lines, ""].join("\n"));
}

/**
 * Removes the benchmark's work directory. A closed @libsql/client connection lingers until garbage
 * collection and may delete its journal under a recursive rm (see scripts/bench.ts): check, and remove again.
 */
export async function removeWorkDir(path: string, bench: string): Promise<void> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    await removeDir(path).catch(() => {});
    if (!existsSync(path)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  console.error(`${bench}: cannot remove the benchmark's directory "${path}": remove it by hand`);
}
