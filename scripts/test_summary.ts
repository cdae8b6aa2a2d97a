/**
 * Reads the JUnit reports of the Deno and Bun runs and prints one closing line per runtime and a total:
 * `tests: N passed, N failed, N skipped`. Only leaf tests count: Deno reports a `describe` block as a
 * test case of its own. Exits 1 when any test failed or when a report holds no test at all.
 *
 * Usage: deno run -A scripts/test_summary.ts deno=.tmp/deno.xml bun=.tmp/bun.xml
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import process from "node:process";
import { childElements, parseXml, type XmlElement } from "../src/s3/xml.ts";

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

function cases(el: XmlElement, out: XmlElement[] = []): XmlElement[] {
  for (const child of el.children) {
    if (child.name === "testcase") out.push(child);
    else cases(child, out);
  }
  return out;
}

function count(xml: string): Counts {
  const all = cases(parseXml(xml));
  const names = all.map((c) => c.attributes.name ?? "");
  const counts: Counts = { passed: 0, failed: 0, skipped: 0 };
  for (const [i, testcase] of all.entries()) {
    const name = names[i] ?? "";
    if (names.some((other) => other.startsWith(`${name} > `))) continue;
    const failed = childElements(testcase, "failure").length + childElements(testcase, "error").length > 0;
    const skipped = childElements(testcase, "skipped").length > 0;
    if (failed) counts.failed++;
    else if (skipped) counts.skipped++;
    else counts.passed++;
  }
  return counts;
}

const total: Counts = { passed: 0, failed: 0, skipped: 0 };
let empty = false;
for (const arg of process.argv.slice(2)) {
  const [label, path] = arg.split("=", 2) as [string, string];
  const c = count(await readFile(path, "utf8"));
  console.log(`${label}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
  if (c.passed + c.failed === 0) empty = true;
  total.passed += c.passed;
  total.failed += c.failed;
  total.skipped += c.skipped;
}
console.log(`tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exitCode = total.failed > 0 || empty ? 1 : 0;
