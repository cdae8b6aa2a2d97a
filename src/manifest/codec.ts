/**
 * Manifest and pointer objects (`docs/FORMAT.md`, "Manifests" and "Pointer"): their bytes, and every check
 * a reader makes of them.
 *
 * @module
 */

import { chunkId, ID_LENGTH, idsEqual } from "../chunk/ids.ts";
import { type CodecChoice, compressPayload, decompressExactly, nodeZstd, type Zstd } from "../chunk/zstd.ts";
import { TesseraError } from "../errors.ts";
import { decodeBody, encodeBody, manifestProblem, MAX_BODY_LENGTH } from "./_body.ts";
import type { Manifest, Pointer } from "./types.ts";

const MANIFEST_MAGIC = [0x54, 0x53, 0x4d, 0x46]; // "TSMF"
const POINTER_MAGIC = [0x54, 0x53, 0x50, 0x54]; // "TSPT"
/** The manifest formats this reader knows; a manifest's own `version` says which it is written in. */
const MANIFEST_VERSIONS = [1, 2];
/** The pointer format. */
const VERSION = 1;
const MANIFEST_HEADER = 16;
const POINTER_FIXED = 58;
const MAX_WRITER_BYTES = 255;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Options for {@linkcode encodeManifest}. */
export interface EncodeManifestOptions {
  /** How to store the body. @default {"auto"} */
  codec?: CodecChoice;
  /** The zstd implementation. @default {nodeZstd} */
  zstd?: Zstd;
}

/** Options for {@linkcode decodeManifest}. */
export interface DecodeManifestOptions {
  /** Names the object in error messages: its key or file. */
  what?: string;
  /** The zstd implementation. @default {nodeZstd} */
  zstd?: Zstd;
}

/**
 * The manifest object for `m`. Throws `TypeError` or `RangeError` naming the field when `m` breaks a rule
 * of `docs/FORMAT.md`.
 *
 * @example Round trip
 * ```ts
 * import { decodeManifest, encodeManifest } from "./codec.ts";
 * const manifest = {
 *   identity: { name: "app", hostname: "", sourcePath: "" },
 *   sequence: 1, createdMs: 0, sourceMtimeMs: 0, pageSize: 4096, imageLength: 0, chunkSize: 65536,
 *   imageSha256: new Uint8Array(32), chunk0: new Uint8Array(0), chunks: { kind: "inline" as const, ids: [] },
 * };
 * console.log((await decodeManifest(await encodeManifest(manifest))).identity.name); // "app"
 * ```
 */
export async function encodeManifest(m: Manifest, options: EncodeManifestOptions = {}): Promise<Uint8Array> {
  const problem = manifestProblem(m);
  if (problem) {
    const message = `Invalid manifest: ${problem.field} ${problem.problem}`;
    throw problem.wrongType ? new TypeError(message) : new RangeError(message);
  }
  const body = encodeBody(m);
  const [code, stored] = compressPayload(body, options);
  const object = new Uint8Array(MANIFEST_HEADER + stored.length + ID_LENGTH);
  const view = new DataView(object.buffer);
  object.set(MANIFEST_MAGIC, 0);
  object[4] = m.version ?? 1;
  object[5] = code;
  view.setUint32(8, body.length, true);
  view.setUint32(12, stored.length, true);
  object.set(stored, MANIFEST_HEADER);
  const end = MANIFEST_HEADER + stored.length;
  object.set(await chunkId(object.subarray(0, end)), end);
  return object;
}

/**
 * The manifest stored as `bytes`, after every check `docs/FORMAT.md` asks of a reader: every claimed length
 * is bounded before anything is allocated for it. Throws `TesseraError` `CORRUPT_MANIFEST` naming
 * `options.what` and the reason.
 *
 * @example Rejecting a newer format
 * ```ts
 * import { decodeManifest } from "./codec.ts";
 * const bytes = new Uint8Array(48);
 * bytes.set([0x54, 0x53, 0x4d, 0x46, 9]);
 * await decodeManifest(bytes, { what: "dbs/app/manifests/0000000000000001" }).catch((error) => {
 *   console.log(error.message); // ...: format version 9 is not supported by this Tessera; upgrade it
 * });
 * ```
 */
export async function decodeManifest(
  bytes: Uint8Array,
  options: DecodeManifestOptions = {},
): Promise<Manifest> {
  const fail = failer("CORRUPT_MANIFEST", "manifest", options.what);
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot decode a manifest: bytes must be a Uint8Array");
  }
  if (bytes.length < MANIFEST_HEADER) {
    fail(`the object is ${bytes.length} bytes, shorter than the ${MANIFEST_HEADER}-byte header`);
  }
  checkHeader(bytes, MANIFEST_MAGIC, "TSMF", fail, MANIFEST_VERSIONS);
  const version = bytes[4] as 1 | 2;
  const codec = bytes[5];
  if (codec !== 0 && codec !== 1) fail(`unknown body codec ${codec}`);
  if (bytes[6] !== 0 || bytes[7] !== 0) fail("the reserved header bytes are not zero");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bodyLength = view.getUint32(8, true);
  const storedLength = view.getUint32(12, true);
  if (bodyLength > MAX_BODY_LENGTH) fail(`the body length ${bodyLength} is over the 16 MiB limit`);
  const end = MANIFEST_HEADER + storedLength;
  if (bytes.length !== end + ID_LENGTH) {
    fail(`the object is ${bytes.length} bytes, but its header says ${end + ID_LENGTH}`);
  }
  if (codec === 0 && storedLength !== bodyLength) {
    fail(`the raw body is ${storedLength} bytes, but its header says ${bodyLength}`);
  }
  await checkTrailer(bytes, end, fail);
  const stored = bytes.subarray(MANIFEST_HEADER, end);
  let body = stored;
  if (codec === 1) {
    try {
      body = decompressExactly(stored, { length: bodyLength, zstd: options.zstd ?? nodeZstd });
    } catch (error) {
      fail((error as Error).message, error);
    }
  }
  return decodeBody(body, fail, version);
}

/**
 * The pointer object for `p`. Throws `TypeError` or `RangeError` naming the field when `p` breaks a rule.
 *
 * @example
 * ```ts
 * import { encodePointer } from "./codec.ts";
 * const bytes = await encodePointer({ sequence: 1, manifestSha256: new Uint8Array(32), createdMs: 0, writer: "w" });
 * console.log(bytes.length); // 91
 * ```
 */
export async function encodePointer(p: Pointer): Promise<Uint8Array> {
  const problem = pointerProblem(p);
  if (problem) throw new (problem[1] ? TypeError : RangeError)(`Invalid pointer: ${problem[0]}`);
  const writer = encoder.encode(p.writer);
  const end = POINTER_FIXED + writer.length;
  const object = new Uint8Array(end + ID_LENGTH);
  const view = new DataView(object.buffer);
  object.set(POINTER_MAGIC, 0);
  object[4] = VERSION;
  view.setBigUint64(8, BigInt(p.sequence), true);
  object.set(p.manifestSha256, 16);
  view.setBigInt64(48, BigInt(p.createdMs), true);
  view.setUint16(56, writer.length, true);
  object.set(writer, POINTER_FIXED);
  object.set(await chunkId(object.subarray(0, end)), end);
  return object;
}

/**
 * The pointer stored as `bytes`, after checking its length, magic, version, reserved bytes, SHA-256 trailer
 * and fields. Throws `TesseraError` `CORRUPT_POINTER` naming `options.what` and the reason.
 *
 * @example
 * ```ts
 * import { decodePointer, encodePointer } from "./codec.ts";
 * const p = { sequence: 7, manifestSha256: new Uint8Array(32), createdMs: 0, writer: "" };
 * console.log((await decodePointer(await encodePointer(p))).sequence); // 7
 * ```
 */
export async function decodePointer(bytes: Uint8Array, options: { what?: string } = {}): Promise<Pointer> {
  const fail = failer("CORRUPT_POINTER", "pointer", options.what);
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot decode a pointer: bytes must be a Uint8Array");
  }
  if (bytes.length < POINTER_FIXED + ID_LENGTH) {
    fail(`the object is ${bytes.length} bytes, shorter than the ${POINTER_FIXED + ID_LENGTH}-byte minimum`);
  }
  checkHeader(bytes, POINTER_MAGIC, "TSPT", fail, [VERSION]);
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) fail("the reserved header bytes are not zero");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const writerLength = view.getUint16(56, true);
  if (writerLength > MAX_WRITER_BYTES) fail(`the writer length ${writerLength} is over ${MAX_WRITER_BYTES}`);
  const end = POINTER_FIXED + writerLength;
  if (bytes.length !== end + ID_LENGTH) {
    fail(`the object is ${bytes.length} bytes, but its writer length says ${end + ID_LENGTH}`);
  }
  await checkTrailer(bytes, end, fail);
  const sequence = view.getBigUint64(8, true);
  if (sequence < 1n || sequence > BigInt(Number.MAX_SAFE_INTEGER)) {
    fail(`sequence ${sequence} is not from 1 to 2^53 - 1`);
  }
  const createdMs = view.getBigInt64(48, true);
  if (createdMs > BigInt(Number.MAX_SAFE_INTEGER) || createdMs < -BigInt(Number.MAX_SAFE_INTEGER)) {
    fail(`createdMs ${createdMs} is outside the safe integer range`);
  }
  let writer = "";
  try {
    writer = decoder.decode(bytes.subarray(POINTER_FIXED, end));
  } catch {
    fail("the writer id is not valid UTF-8");
  }
  return {
    sequence: Number(sequence),
    manifestSha256: bytes.slice(16, 48),
    createdMs: Number(createdMs),
    writer,
  };
}

type Fail = (reason: string, cause?: unknown) => never;

function failer(code: "CORRUPT_MANIFEST" | "CORRUPT_POINTER", noun: string, what: string | undefined): Fail {
  return (reason, cause) => {
    const message = `Cannot decode ${noun}${what === undefined ? "" : ` "${what}"`}: ${reason}`;
    throw new TesseraError(code, message, cause === undefined ? {} : { cause });
  };
}

function checkHeader(bytes: Uint8Array, magic: number[], name: string, fail: Fail, versions: number[]): void {
  if (magic.some((b, i) => bytes[i] !== b)) fail(`the object does not start with the magic ${name}`);
  if (!versions.includes(bytes[4]!)) {
    fail(`format version ${bytes[4]} is not supported by this Tessera; upgrade it`);
  }
}

async function checkTrailer(bytes: Uint8Array, end: number, fail: Fail): Promise<void> {
  if (!idsEqual(await chunkId(bytes.subarray(0, end)), bytes.subarray(end))) {
    fail("its SHA-256 trailer does not match its bytes");
  }
}

/** The first rule `p` breaks, as `[message, isTypeError]`, or `undefined`. */
function pointerProblem(p: Pointer): [string, boolean] | undefined {
  if (typeof p !== "object" || p === null) return ["a pointer must be an object", true];
  if (typeof p.sequence !== "number" || typeof p.createdMs !== "number") {
    return ["sequence and createdMs must be numbers", true];
  }
  if (!Number.isSafeInteger(p.sequence) || p.sequence < 1) {
    return [`sequence ${p.sequence} is not from 1 to 2^53 - 1`, false];
  }
  if (!Number.isSafeInteger(p.createdMs)) return [`createdMs ${p.createdMs} is not a safe integer`, false];
  if (!(p.manifestSha256 instanceof Uint8Array)) return ["manifestSha256 must be a Uint8Array", true];
  if (p.manifestSha256.length !== ID_LENGTH) return ["manifestSha256 must be 32 bytes", false];
  if (typeof p.writer !== "string" || !p.writer.isWellFormed()) {
    return ["writer must be a well-formed string", true];
  }
  const length = encoder.encode(p.writer).length;
  if (length > MAX_WRITER_BYTES) return [`writer is ${length} bytes, over ${MAX_WRITER_BYTES}`, false];
  return undefined;
}
