/**
 * `tessera store`: look at and move objects in any store, by the same targets the other commands take.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { TesseraError } from "../errors.ts";
import { openStore } from "../store/open.ts";
import type { BlobStore } from "../store/types.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { writeFileAtomic } from "../files.ts";

/** `tessera store --help`. */
export const STORE_HELP = `Usage: tessera store <action> STORE [ARGS] [options]

Look at and move objects in a store. STORE is s3://bucket/prefix, file:///dir, a directory
path, or http(s)://host/path (read-only). S3 settings come from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION and AWS_ENDPOINT_URL(_S3).

Actions:
  ls STORE [PREFIX]         List objects (and, with --delimiter, folders) under PREFIX
  get STORE KEY [-o FILE]   Write an object to FILE (atomically) or to stdout
  head STORE KEY            Show an object's size, ETag and date
  put STORE KEY FILE        Upload FILE as KEY
  rm STORE KEY...           Delete objects (missing keys are fine)

Options:
  -o, --output FILE   (get) write here instead of stdout
  --delimiter         (ls) roll keys up to '/'-separated folders
  --json              print JSON
  -h, --help          show this help

Exit codes: 0 done, 1 failed, 2 bad usage, 3 not found.
`;

/** Runs `tessera store ...` and returns the exit code. */
export async function storeCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      delimiter: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    io.stdout(STORE_HELP);
    return EXIT.ok;
  }
  const [action, target, ...rest] = positionals;
  if (!action) throw new UsageError("store: give an action: ls, get, head, put or rm");
  if (!target) throw new UsageError(`store ${action}: give a store, such as s3://bucket/prefix or ./backups`);
  const store = openStore(target, { env: io.env });
  const json = values.json;
  switch (action) {
    case "ls":
      return await list(store, rest[0] ?? "", values.delimiter, json, io);
    case "get":
      return await get(store, need(rest[0], "get", "KEY"), values.output, io);
    case "head":
      return await head(store, need(rest[0], "head", "KEY"), json, io);
    case "put": {
      const key = need(rest[0], "put", "KEY");
      const file = need(rest[1], "put", "FILE");
      const { etag } = await store.put(key, new Uint8Array(await readFile(file)));
      io.stdout(json ? JSON.stringify({ ok: true, key, etag }) + "\n" : `uploaded ${key} ${etag}\n`);
      return EXIT.ok;
    }
    case "rm": {
      if (rest.length === 0) throw new UsageError("store rm: give at least one KEY");
      for (const key of rest) await store.delete(key);
      if (json) io.stdout(JSON.stringify({ ok: true, deleted: rest }) + "\n");
      return EXIT.ok;
    }
    default:
      throw new UsageError(`store: unknown action "${action}"; use ls, get, head, put or rm`);
  }
}

function need(value: string | undefined, action: string, name: string): string {
  if (value === undefined) throw new UsageError(`store ${action}: missing ${name}`);
  return value;
}

async function list(store: BlobStore, prefix: string, delimiter: boolean, json: boolean, io: CliIo) {
  for await (const item of store.list(prefix, delimiter ? { delimiter: "/" } : {})) {
    if (json) {
      io.stdout(
        JSON.stringify(
          item.type === "object" ? { ...item, lastModified: item.lastModified?.toISOString() } : item,
        ) + "\n",
      );
    } else if (item.type === "prefix") {
      io.stdout(`${"PRE".padStart(12)}  ${item.prefix}\n`);
    } else {
      io.stdout(`${String(item.size).padStart(12)}  ${item.key}\n`);
    }
  }
  return EXIT.ok;
}

async function get(store: BlobStore, key: string, output: string | undefined, io: CliIo) {
  const got = await store.get(key);
  if (got.status !== "ok") {
    throw new TesseraError("NOT_FOUND", `Cannot get "${key}": no such object in ${store.description}`);
  }
  if (output) await writeFileAtomic(output, got.body);
  else io.stdout(got.body);
  return EXIT.ok;
}

async function head(store: BlobStore, key: string, json: boolean, io: CliIo) {
  const info = await store.head(key);
  if (info.status !== "ok") {
    throw new TesseraError("NOT_FOUND", `Cannot head "${key}": no such object in ${store.description}`);
  }
  const shown = {
    key,
    size: info.size,
    etag: info.etag,
    lastModified: info.lastModified?.toISOString() ?? null,
  };
  io.stdout(
    json
      ? JSON.stringify(shown) + "\n"
      : `${shown.key}\nsize ${shown.size}\netag ${shown.etag}\nmodified ${shown.lastModified}\n`,
  );
  return EXIT.ok;
}
