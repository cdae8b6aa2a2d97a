// The CLI as Node runs it, for the test that bundles it for Node (Node 20 runs no TypeScript and has no
// import.meta.main).
import process from "node:process";
import { run } from "../../src/cli/main.ts";

process.exitCode = await run(process.argv.slice(2));
