/**
 * What the history tests share: real SQLite databases made by the writer process, store directories
 * aged with utimes, manifests published with a chosen creation time, and the CLI run in-process.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readdir, utimes } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../src/cli/main.ts";
import type { CliIo } from "../../src/cli/_io.ts";
import { encodeManifest, encodePointer } from "../../src/manifest/codec.ts";
import {
  CHUNKS_PREFIX,
  manifestKey,
  manifestsPrefix,
  PACKS_PREFIX,
  pointerKey,
} from "../../src/manifest/keys.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { makeImage, publishImage } from "../_helpers/publish.ts";

/** Makes a real SQLite database at `path` holding `rows` rows of the test writer's schema. */

/** Every file under `dir`, recursively, whose path passes `keep`. */
export async function filesUnder(
  dir: string,
  keep: (path: string) => boolean = () => true,
): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name);
    if (keep(path)) found.push(path);
  }
  return found;
}

/** Sets the modification time of every file under `dir` that passes `keep` to `ageMs` ago. */
export async function ageFiles(
  dir: string,
  ageMs: number,
  keep: (path: string) => boolean = () => true,
): Promise<number> {
  const files = await filesUnder(dir, keep);
  const at = new Date(Date.now() - ageMs);
  await Promise.all(files.map((file) => utimes(file, at, at)));
  return files.length;
}

/** Deletes database `name`'s pointer and every manifest, leaving its chunks unreferenced. */
export async function forgetDatabase(store: BlobStore, name: string): Promise<void> {
  await store.delete(pointerKey(name));
  for await (const item of store.list(manifestsPrefix(name))) {
    if (item.type === "object") await store.delete(item.key);
  }
}

/** Every key under `prefix`, sorted. */
export async function keysUnder(store: BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of store.list(prefix)) if (item.type === "object") keys.push(item.key);
  return keys.sort();
}

/**
 * Publishes a small image as snapshot `sequence` of `name`, created at `createdMs`; moves the pointer to
 * it unless `pointer` is false.
 */
export async function publishAt(
  store: BlobStore,
  name: string,
  sequence: number,
  createdMs: number,
  options: { pointer?: boolean; seed?: number } = {},
): Promise<void> {
  const image = makeImage(3 * 4096, { chunkSize: 4096, seed: options.seed ?? sequence });
  const { manifest } = await publishImage(store, image, {
    name,
    sequence,
    chunkSize: 4096,
    skipPointer: true,
  });
  const bytes = await encodeManifest({ ...manifest, createdMs });
  await store.put(manifestKey(name, sequence), bytes);
  if (options.pointer ?? true) {
    const manifestSha256 = new Uint8Array(createHash("sha256").update(bytes).digest());
    await store.put(
      pointerKey(name),
      await encodePointer({ sequence, manifestSha256, createdMs, writer: "" }),
    );
  }
}

/** What one in-process CLI run printed. */
export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs the CLI in this process with `env`. */
export function cli(env: Record<string, string | undefined>): (...args: string[]) => Promise<CliResult> {
  return async (...args: string[]) => {
    let out = "";
    let err = "";
    const io: CliIo = {
      env,
      stdout: (d) => (out += typeof d === "string" ? d : new TextDecoder().decode(d)),
      stderr: (t) => (err += t),
      isTty: false,
    };
    const code = await run(args, io);
    return { code, out, err };
  };
}

export { referencedKeys } from "../_helpers/stored.ts";

/** The keys of every chunk object and pack in `store`, sorted. */
export async function objectKeys(store: BlobStore): Promise<string[]> {
  return [...await keysUnder(store, CHUNKS_PREFIX), ...await keysUnder(store, PACKS_PREFIX)].sort();
}
