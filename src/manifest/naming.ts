/**
 * Database names (`docs/FORMAT.md`, "Database names"): names derived from a host and a path, names owners
 * choose, and the `tessera://` sources readers name databases by.
 *
 * @module
 */

import { sha256Hex } from "../bytes.ts";
import { TesseraError } from "../errors.ts";

/** The longest name, in bytes (all names are ASCII). */
export const MAX_NAME_LENGTH = 200;
/** The longest prefix of the encoded host and path a shortened derived name keeps, in bytes. */
const CUT_LENGTH = 120;
const CHOSEN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;
const UNRESERVED = /^[A-Za-z0-9._-]$/;
/** One byte of an encoded host or path: kept as is, or a canonical upper-case `%XX` escape. */
const TOKEN = "(?:[A-Za-z0-9._-]|%(?:[0-9A-F][0-9A-F]))";
const FULL_DERIVED = new RegExp(`^([0-9a-f]{4})-(${TOKEN}+)$`);
const SHORT_DERIVED = new RegExp(`^([0-9a-f]{4})-(${TOKEN}+)~([0-9a-f]{32})$`);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The name of the database at `absolutePath` on `hostname`: the first 4 hex digits of
 * `SHA-256(hostname || 0x00 || absolutePath)`, `-`, then the percent-encoded host and path, shortened to
 * at most 200 bytes with `~` and 32 hex digits of the hash when longer. Throws `RangeError` for an empty
 * host or one holding `/`, a path not starting with `/`, a NUL, or a string that is not well-formed Unicode.
 *
 * @example
 * ```ts
 * import { deriveName } from "./naming.ts";
 * console.log((await deriveName("db1", "/srv/app.db")).slice(4)); // "-db1%3A%2Fsrv%2Fapp.db"
 * ```
 */
export async function deriveName(hostname: string, absolutePath: string): Promise<string> {
  checkHostAndPath(hostname, absolutePath);
  const h = await sha256Hex(encoder.encode(`${hostname}\0${absolutePath}`));
  const full = `${percentEncode(hostname)}%3A${percentEncode(absolutePath)}`;
  if (5 + full.length <= MAX_NAME_LENGTH) return `${h.slice(0, 4)}-${full}`;
  let cut = CUT_LENGTH;
  // Back off to the start of a %XX escape rather than end inside one.
  if (full[cut - 1] === "%") cut -= 1;
  else if (full[cut - 2] === "%") cut -= 2;
  return `${h.slice(0, 4)}-${full.slice(0, cut)}~${h.slice(0, 32)}`;
}

/** True when `name` is a chosen name: `[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}`. */
export function isChosenName(name: string): boolean {
  return typeof name === "string" && CHOSEN.test(name);
}

/**
 * True when `name` has the shape of a derived name: 4 hex digits, `-`, a percent-encoded host, `%3A` and
 * absolute path (canonical escapes of UTF-8), at most 200 bytes; or its shortened form ending in `~` and 32
 * hex digits that start with the same 4. Chosen and derived names never look alike: only derived names hold
 * `%` or `~`.
 *
 * @example
 * ```ts
 * import { isDerivedName } from "./naming.ts";
 * console.log(isDerivedName("1a2b-db1%3A%2Fsrv%2Fapp.db")); // true
 * console.log(isDerivedName("app")); // false
 * ```
 */
export function isDerivedName(name: string): boolean {
  if (typeof name !== "string" || name.length > MAX_NAME_LENGTH) return false;
  const short = SHORT_DERIVED.exec(name);
  if (short) {
    const [, h4, cut, h32] = short as unknown as [string, string, string, string];
    return h32.startsWith(h4) && cut.length >= CUT_LENGTH - 2 && cut.length <= CUT_LENGTH && isCanonical(cut);
  }
  const full = FULL_DERIVED.exec(name)?.[2];
  if (full === undefined || !isCanonical(full) || full.includes("%00")) return false;
  // The host is not empty and holds no "/", so the first "%2F" starts the path, right after "%3A".
  const slash = full.indexOf("%2F");
  return slash >= 4 && full.slice(slash - 3, slash) === "%3A" && percentDecode(full) !== undefined;
}

/** True when `name` is a chosen or a derived name, so it can name a database in keys. */
export function isDatabaseName(name: string): boolean {
  return isChosenName(name) || isDerivedName(name);
}

/**
 * Throws `TesseraError` `CONFIG_INVALID`, naming `name` and the rule it breaks, unless it is a valid chosen
 * name: 1 to 200 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
 *
 * @example
 * ```ts
 * import { checkChosenName } from "./naming.ts";
 * checkChosenName("app-prod"); // fine
 * ```
 */
export function checkChosenName(name: string): void {
  const fail = (rule: string): never => {
    throw new TesseraError("CONFIG_INVALID", `Invalid database name ${JSON.stringify(name)}: ${rule}`);
  };
  if (typeof name !== "string") fail("a name must be a string");
  if (name.length === 0) fail("a name cannot be empty");
  if (name.length > MAX_NAME_LENGTH) fail(`a chosen name is at most ${MAX_NAME_LENGTH} characters`);
  if (name.startsWith(".")) fail("a chosen name cannot start with '.'");
  if (!CHOSEN.test(name)) fail("a chosen name holds only A-Z, a-z, 0-9, '.', '_' and '-'");
}

/** What a source names: the database's name and, when the source says, its host and path (else empty). */
export interface ParsedSource {
  name: string;
  hostname: string;
  sourcePath: string;
}

/**
 * The database `source` names: `tessera://host/abs/path` (the path percent-decoded; everything after the
 * host is path), `tessera:///abs/path` (on `options.hostname`), a chosen name, or a derived name (whose host
 * and path are recovered unless the name was shortened). Throws `TesseraError` `CONFIG_INVALID` otherwise.
 *
 * @example
 * ```ts
 * import { parseSource } from "./naming.ts";
 * const parsed = await parseSource("tessera:///srv/my%20app.db", { hostname: "db1" });
 * console.log(parsed.sourcePath); // "/srv/my app.db"
 * ```
 */
export async function parseSource(source: string, options: { hostname: string }): Promise<ParsedSource> {
  const fail = (why: string): never => {
    throw new TesseraError("CONFIG_INVALID", `Cannot parse source ${JSON.stringify(source)}: ${why}`);
  };
  if (typeof source !== "string") fail("a source must be a string");
  if (!source.isWellFormed()) fail("it is not well-formed Unicode");
  if (source.startsWith("tessera://")) {
    const rest = source.slice("tessera://".length);
    const slash = rest.indexOf("/");
    if (slash < 0) fail("expected tessera://host/abs/path or tessera:///abs/path");
    const hostname = slash === 0 ? options.hostname : rest.slice(0, slash);
    const sourcePath = percentDecode(rest.slice(slash));
    if (sourcePath === undefined) fail("the path holds an invalid %XX escape or is not UTF-8 once decoded");
    const path = sourcePath as string;
    if (path === "/" || path.endsWith("/")) fail("the path names a directory, not a database file");
    const problem = hostAndPathProblem(hostname, path);
    if (problem) fail(problem);
    return { name: await deriveName(hostname, path), hostname, sourcePath: path };
  }
  if (isChosenName(source)) return { name: source, hostname: "", sourcePath: "" };
  if (!isDerivedName(source)) {
    fail("expected tessera://host/abs/path, tessera:///abs/path, or a database name");
  }
  const full = FULL_DERIVED.exec(source)?.[2];
  const slash = full?.indexOf("%2F") ?? -1;
  if (full === undefined || slash < 4) return { name: source, hostname: "", sourcePath: "" };
  // The host cannot hold "/", so the first "%2F" starts the path and the "%3A" before it ends the host.
  const hostname = percentDecode(full.slice(0, slash - 3)) ?? "";
  const sourcePath = percentDecode(full.slice(slash)) ?? "";
  if (hostAndPathProblem(hostname, sourcePath) || await deriveName(hostname, sourcePath) !== source) {
    fail("its leading hash does not match the host and path it names");
  }
  return { name: source, hostname, sourcePath };
}

/** Throws `RangeError` unless `hostname` and `absolutePath` can derive a name. */
function checkHostAndPath(hostname: string, absolutePath: string): void {
  const problem = hostAndPathProblem(hostname, absolutePath);
  if (problem) throw new RangeError(`Cannot derive a database name: ${problem}`);
}

function hostAndPathProblem(hostname: string, path: string): string | undefined {
  if (typeof hostname !== "string" || hostname === "") return "the hostname is empty";
  if (typeof path !== "string" || !path.startsWith("/")) {
    return `the path ${JSON.stringify(path)} is not absolute`;
  }
  if (hostname.includes("/")) return `the hostname ${JSON.stringify(hostname)} holds '/'`;
  if (hostname.includes("\0") || path.includes("\0")) return "the hostname or path holds a NUL character";
  if (!hostname.isWellFormed() || !path.isWellFormed()) {
    return "the hostname or path is not well-formed Unicode";
  }
  return undefined;
}

/** `text` as UTF-8 with every byte but `A-Z a-z 0-9 - . _` written `%XX` (upper-case hex). */
function percentEncode(text: string): string {
  let out = "";
  for (const byte of encoder.encode(text)) {
    const char = String.fromCharCode(byte);
    out += UNRESERVED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** `text` with its `%XX` escapes decoded as UTF-8, or `undefined` when an escape or the UTF-8 is invalid. */
function percentDecode(text: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < text.length;) {
    if (text[i] === "%") {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 3;
      continue;
    }
    const char = String.fromCodePoint(text.codePointAt(i) as number);
    bytes.push(...encoder.encode(char));
    i += char.length;
  }
  try {
    return decoder.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

/** True when no `%XX` escape in `text` stands for a byte that is written as itself. */
function isCanonical(text: string): boolean {
  for (const match of text.matchAll(/%([0-9A-F]{2})/g)) {
    if (UNRESERVED.test(String.fromCharCode(parseInt(match[1] as string, 16)))) return false;
  }
  return true;
}
