/**
 * The house's rules, checked on the source itself: every import points down the layers of
 * docs/ARCHITECTURE.md (or stays inside its own folder), and no file imports itself back through others.
 */

import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

/**
 * Each folder (or top-level file) of src/ and its layer; an import may only point to a lower layer or
 * within its own folder. Folders on one layer do not import each other.
 */
export const LAYERS: Record<string, number> = {
  "bytes.ts": 0,
  "errors.ts": 0,
  "files.ts": 0,
  "version.ts": 0,
  "pool.ts": 0,
  net: 1,
  s3: 2,
  store: 3,
  chunk: 4,
  manifest: 5,
  // The two pipelines: reading images (restore) and writing them (capture, publish, sync).
  restore: 6,
  write: 6,
  replica: 7,
  history: 7,
  // What composes a pipeline with history or both pipelines: the replicator (capture and publish on every
  // change, touching chunks for gc), directory snapshots (sync, then read back and verify).
  replicate: 8,
  snapshot: 8,
  // Turning a user's configuration into built stores and chunk sources, and the entry points.
  config: 9,
  server: 10,
  cli: 11,
  "mod.ts": 11,
  "web.ts": 11,
};

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await sourceFiles(path));
    else if (/\.(ts|mts|js|mjs)$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The files of src/ each file imports (relative specifiers only), as paths relative to src/. */
export async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await sourceFiles(SRC)) {
    const text = (await readFile(file, "utf8")).replace(/\/\*[\s\S]*?\*\//g, "");
    const targets: string[] = [];
    for (const match of text.matchAll(IMPORT)) {
      const spec = match[1] ?? match[2] ?? match[3] ?? "";
      if (!spec.startsWith(".")) continue;
      targets.push(relative(SRC, resolve(dirname(file), spec)));
    }
    graph.set(relative(SRC, file), targets);
  }
  return graph;
}

function unitOf(path: string): string {
  return path.split("/")[0] as string;
}

describe("the layers of src/", () => {
  it("every folder and top-level file of src/ has a layer", async () => {
    const graph = await importGraph();
    const units = new Set([...graph.keys()].map(unitOf));
    const missing = [...units].filter((u) => !(u in LAYERS));
    assert.deepEqual(missing, [], `give these a layer in LAYERS and docs/ARCHITECTURE.md: ${missing}`);
  });

  it("no import points up a layer or sideways into another folder of the same layer", async () => {
    const graph = await importGraph();
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      const from = unitOf(file);
      for (const target of targets) {
        const to = unitOf(target);
        if (from === to) continue;
        const a = LAYERS[from];
        const b = LAYERS[to];
        if (a === undefined || b === undefined || b >= a) wrong.push(`${file} -> ${target}`);
      }
    }
    assert.deepEqual(wrong, [], `imports against the layers:\n${wrong.join("\n")}`);
  });

  it("no file reaches itself through its imports", async () => {
    const graph = await importGraph();
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, "open");
      stack.push(file);
      for (const target of graph.get(file) ?? []) {
        if (state.get(target) === "open") {
          cycles.push([...stack.slice(stack.indexOf(target)), target].join(" -> "));
        } else if (!state.has(target) && graph.has(target)) visit(target);
      }
      stack.pop();
      state.set(file, "done");
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file);
    assert.deepEqual(cycles, [], `import cycles:\n${cycles.join("\n")}`);
  });

  it("reads the imports it checks", async () => {
    // The rules above can only fail if the graph is really read.
    const graph = await importGraph();
    assert.ok(graph.size > 50, `read ${graph.size} files of src/`);
    const edges = [...graph.values()].flat().length;
    assert.ok(edges > 200, `read ${edges} imports`);
    assert.ok(graph.get("write/sync.ts")?.includes("write/capture.ts"), "sync.ts imports capture.ts");
  });
});
