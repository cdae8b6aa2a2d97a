/**
 * A manifest's body (`docs/FORMAT.md`, "Manifests"): its field rules, and its bytes.
 *
 * @module
 */

import { ID_LENGTH } from "../chunk/ids.ts";
import { decodeLocatedList, encodeLocatedList } from "./located_list.ts";
import { isChosenName, isDatabaseName } from "./naming.ts";
import type { ChunkId, ChunkList, Manifest } from "./types.ts";

/** The largest body, in bytes (16 MiB). */
export const MAX_BODY_LENGTH = 16 * 1024 * 1024;
const MAX_NAME_BYTES = 255;
const MAX_TEXT_BYTES = 4096;
const MAX_IMAGE_LENGTH = 2 ** 48;
const MAX_U32 = 2 ** 32 - 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A broken rule: the field, what is wrong with it, and whether the value has the wrong type. */
export interface Problem {
  field: string;
  problem: string;
  wrongType?: boolean;
}

const isPowerOfTwo = (n: number, min: number, max: number) =>
  Number.isInteger(n) && n >= min && n <= max && (n & (n - 1)) === 0;

/** The number of chunks after chunk 0 an image of `imageLength` bytes cut at `chunkSize` has. */
export function countAfterChunk0(imageLength: number, chunkSize: number): number {
  return Math.max(0, Math.ceil(imageLength / chunkSize) - 1);
}

/** The first rule `m` breaks, or `undefined` when it keeps them all. */
export function manifestProblem(m: Manifest): Problem | undefined {
  const type = (field: string, problem: string): Problem => ({ field, problem, wrongType: true });
  if (typeof m !== "object" || m === null) return type("manifest", "must be an object");
  const version = m.version ?? 1;
  if (version !== 1 && version !== 2) return { field: "version", problem: `${m.version} is not 1 or 2` };
  const identity = m.identity;
  if (typeof identity !== "object" || identity === null) return type("identity", "must be an object");
  for (const field of ["name", "hostname", "sourcePath"] as const) {
    const value = identity[field];
    if (typeof value !== "string") return type(`identity.${field}`, "must be a string");
    if (!value.isWellFormed()) return type(`identity.${field}`, "must be well-formed Unicode");
    const max = field === "name" ? MAX_NAME_BYTES : MAX_TEXT_BYTES;
    if (encoder.encode(value).length > max) {
      return { field: `identity.${field}`, problem: `is over ${max} bytes` };
    }
  }
  if (!isDatabaseName(identity.name)) {
    return {
      field: "identity.name",
      problem: `${JSON.stringify(identity.name)} is not a chosen or derived name`,
    };
  }
  if (isChosenName(identity.name) && identity.hostname !== "") {
    return { field: "identity.hostname", problem: "must be empty for a chosen name" };
  }
  for (
    const field of ["sequence", "createdMs", "sourceMtimeMs", "pageSize", "imageLength", "chunkSize"] as const
  ) {
    if (typeof m[field] !== "number") return type(field, "must be a number");
    if (!Number.isSafeInteger(m[field])) return { field, problem: `${m[field]} is not a safe integer` };
  }
  if (m.sequence < 1) return { field: "sequence", problem: `${m.sequence} is not from 1 to 2^53 - 1` };
  if (!isPowerOfTwo(m.pageSize, 512, 65536)) {
    return { field: "pageSize", problem: `${m.pageSize} is not a power of two from 512 to 65536` };
  }
  if (!isPowerOfTwo(m.chunkSize, 4096, 1048576) || m.chunkSize < m.pageSize) {
    return {
      field: "chunkSize",
      problem: `${m.chunkSize} is not a power of two from 4096 to 1048576 and ≥ pageSize`,
    };
  }
  if (m.imageLength < 0 || m.imageLength > MAX_IMAGE_LENGTH || m.imageLength % m.pageSize !== 0) {
    return { field: "imageLength", problem: `${m.imageLength} is not a multiple of pageSize from 0 to 2^48` };
  }
  if (!(m.imageSha256 instanceof Uint8Array)) return type("imageSha256", "must be a Uint8Array");
  if (m.imageSha256.length !== ID_LENGTH) return { field: "imageSha256", problem: "is not 32 bytes" };
  if (version === 2) {
    if (!(m.imageDigest instanceof Uint8Array)) return type("imageDigest", "must be a Uint8Array");
    if (m.imageDigest.length !== ID_LENGTH) return { field: "imageDigest", problem: "is not 32 bytes" };
  } else if (m.imageDigest !== undefined) {
    return { field: "imageDigest", problem: "needs format version 2" };
  }
  if (!(m.chunk0 instanceof Uint8Array)) return type("chunk0", "must be a Uint8Array");
  const chunk0Length = Math.min(m.chunkSize, m.imageLength);
  if (m.chunk0.length !== chunk0Length) {
    return {
      field: "chunk0",
      problem: `is ${m.chunk0.length} bytes, not min(chunkSize, imageLength) = ${chunk0Length}`,
    };
  }
  return chunkListProblem(m.chunks, countAfterChunk0(m.imageLength, m.chunkSize), version);
}

function chunkListProblem(list: ChunkList, count: number, version: 1 | 2): Problem | undefined {
  if (count > MAX_U32) return { field: "imageLength", problem: `makes ${count} chunks, more than 2^32 - 1` };
  if (typeof list !== "object" || list === null) {
    return { field: "chunks", problem: "must be an object", wrongType: true };
  }
  const ids = list.kind === "inline" ? list.ids : list.kind === "indexed" ? list.indexIds : undefined;
  const field = list.kind === "inline" ? "chunks.ids" : "chunks.indexIds";
  if (!Array.isArray(ids)) {
    return { field: "chunks.kind", problem: "must be inline or indexed with its ids", wrongType: true };
  }
  if (ids.some((id) => !(id instanceof Uint8Array))) {
    return { field, problem: "must hold Uint8Arrays", wrongType: true };
  }
  if (ids.some((id) => id.length !== ID_LENGTH)) return { field, problem: "must hold 32-byte ids" };
  if (list.kind === "inline") {
    if (list.locations !== undefined) {
      if (version === 1) return { field: "chunks.locations", problem: "needs format version 2" };
      if (!Array.isArray(list.locations) || list.locations.length !== ids.length) {
        return { field: "chunks.locations", problem: "must hold one location (or undefined) per id" };
      }
    }
    return ids.length === count ? undefined : { field, problem: `lists ${ids.length} ids, not ${count}` };
  }
  if (list.count !== count) return { field: "chunks.count", problem: `is ${list.count}, not ${count}` };
  if (version === 2 && ids.some((id) => id.every((b) => b === 0))) {
    return { field, problem: "holds an all-zero index id, which format 2 never writes" };
  }
  if (!isPowerOfTwo(list.fanout, 64, 32768)) {
    return { field: "chunks.fanout", problem: `${list.fanout} is not a power of two from 64 to 32768` };
  }
  const indexCount = Math.ceil(count / list.fanout);
  return ids.length === indexCount
    ? undefined
    : { field, problem: `lists ${ids.length} ids, not ${indexCount}` };
}

/** The body of `m`, which must keep every rule (see {@linkcode manifestProblem}). */
export function encodeBody(m: Manifest): Uint8Array {
  const text = [m.identity.name, m.identity.hostname, m.identity.sourcePath].map((s) => encoder.encode(s));
  const list = m.chunks;
  const version = m.version ?? 1;
  const ids: readonly ChunkId[] = list.kind === "inline" ? list.ids : list.indexIds;
  // Format 2 lists inline chunks with their locations; index ids stay plain.
  const listed = version === 2 && list.kind === "inline"
    ? encodeLocatedList(list.ids, list.locations)
    : undefined;
  const length = text.reduce((n, t) => n + 2 + t.length, 0) + 4 * 8 + 2 * 4 + 32 + 4 + m.chunk0.length + 1 +
    4 + (version === 2 ? ID_LENGTH : 0) +
    (list.kind === "indexed" ? 8 : 0) + (listed?.length ?? ids.length * ID_LENGTH);
  if (length > MAX_BODY_LENGTH) {
    throw new RangeError(
      `Invalid manifest: its body would be ${length} bytes, over 16 MiB; list chunks indexed`,
    );
  }
  const body = new Uint8Array(length);
  const view = new DataView(body.buffer);
  let at = 0;
  const bytes = (b: Uint8Array) => {
    body.set(b, at);
    at += b.length;
  };
  const u16 = (n: number) => {
    view.setUint16(at, n, true);
    at += 2;
  };
  const u32 = (n: number) => {
    view.setUint32(at, n, true);
    at += 4;
  };
  const u64 = (n: number) => {
    view.setBigUint64(at, BigInt(n), true);
    at += 8;
  };
  const i64 = (n: number) => {
    view.setBigInt64(at, BigInt(n), true);
    at += 8;
  };
  for (const t of text) {
    u16(t.length);
    bytes(t);
  }
  u64(m.sequence);
  i64(m.createdMs);
  i64(m.sourceMtimeMs);
  u32(m.pageSize);
  u64(m.imageLength);
  u32(m.chunkSize);
  bytes(m.imageSha256);
  if (version === 2) bytes(m.imageDigest!);
  u32(m.chunk0.length);
  bytes(m.chunk0);
  body[at++] = list.kind === "inline" ? 0 : 1;
  u32(list.kind === "inline" ? list.ids.length : list.count);
  if (list.kind === "indexed") {
    u32(list.fanout);
    u32(list.indexIds.length);
  }
  if (listed) bytes(listed);
  else for (const id of ids) bytes(id);
  return body;
}

/**
 * The manifest `body` holds, reading no length it claims past its end; calls `fail` with the reason when
 * the body is malformed. Field rules are left to {@linkcode manifestProblem}.
 */
export function decodeBody(body: Uint8Array, fail: (reason: string) => never, version: 1 | 2 = 1): Manifest {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  const take = (n: number, field: string) => {
    if (n > body.length - at) {
      fail(`the body ends inside ${field} (${n} bytes claimed, ${body.length - at} left)`);
    }
    at += n;
    return at - n;
  };
  const u8 = (field: string) => view.getUint8(take(1, field));
  const u32 = (field: string) => view.getUint32(take(4, field), true);
  const u64 = (field: string) => safe(view.getBigUint64(take(8, field), true), field);
  const i64 = (field: string) => safe(view.getBigInt64(take(8, field), true), field);
  const safe = (n: bigint, field: string) =>
    n > BigInt(Number.MAX_SAFE_INTEGER) || n < -BigInt(Number.MAX_SAFE_INTEGER)
      ? fail(`${field} ${n} is outside the safe integer range`)
      : Number(n);
  const bytes = (n: number, field: string) => body.slice(take(n, field), at);
  const str = (field: string) => {
    const raw = body.subarray(take(view.getUint16(take(2, field), true), field), at);
    try {
      return decoder.decode(raw);
    } catch {
      return fail(`${field} is not valid UTF-8`);
    }
  };
  const identity = { name: str("name"), hostname: str("hostname"), sourcePath: str("sourcePath") };
  const sequence = u64("sequence");
  const createdMs = i64("createdMs");
  const sourceMtimeMs = i64("sourceMtimeMs");
  const pageSize = u32("pageSize");
  const imageLength = u64("imageLength");
  const chunkSize = u32("chunkSize");
  const imageSha256 = bytes(ID_LENGTH, "imageSha256");
  const imageDigest = version === 2 ? bytes(ID_LENGTH, "imageDigest") : undefined;
  const chunk0 = bytes(u32("chunk0Length"), "chunk0");
  const kind = u8("listKind");
  const count = u32("count");
  let chunks: ChunkList;
  const ids = (n: number, field: string) => {
    take(n * ID_LENGTH, field);
    const list: ChunkId[] = [];
    for (let i = at - n * ID_LENGTH; i < at; i += ID_LENGTH) list.push(body.slice(i, i + ID_LENGTH));
    return list;
  };
  if (kind === 0 && version === 2) {
    if (body.length - at < 4) fail("the body ends inside the located list");
    const packs = view.getUint32(at, true);
    const length = 4 + packs * (ID_LENGTH + 4) + count * (ID_LENGTH + 12);
    const located = decodeLocatedList(body.subarray(take(length, "the located list"), at), count, fail);
    chunks = { kind: "inline", ids: located.ids, locations: located.locations };
  } else if (kind === 0) chunks = { kind: "inline", ids: ids(count, "ids") };
  else if (kind === 1) {
    const fanout = u32("fanout");
    chunks = { kind: "indexed", count, fanout, indexIds: ids(u32("indexCount"), "indexIds") };
  } else return fail(`unknown listKind ${kind}`);
  if (at !== body.length) fail(`the body has ${body.length - at} bytes after its end`);
  const m: Manifest = {
    ...(version === 2 ? { version, imageDigest } : {}),
    identity,
    sequence,
    createdMs,
    sourceMtimeMs,
    pageSize,
    imageLength,
    chunkSize,
    imageSha256,
    chunk0,
    chunks,
  };
  const problem = manifestProblem(m);
  if (problem) fail(`${problem.field} ${problem.problem}`);
  return m;
}
