/**
 * The zstd compressor the codecs use, passed in so a runtime without `node:zlib` zstd can supply its own,
 * and a reader of zstd frame headers so the codecs can check a payload's shape before decompressing it.
 *
 * @module
 */

import { decompress as decompressInJs } from "fzstd";
import { errorMessage } from "../errors.ts";

// The parts of node:zlib used here.
interface NodeZlib {
  constants?: Record<string, number>;
  zstdCompressSync?: (bytes: Uint8Array, options?: object) => Uint8Array;
  zstdDecompressSync?: (bytes: Uint8Array, options?: object) => Uint8Array;
}

// Deno, Bun and Node ≥ 22.15 have zstd in node:zlib; older Node and browsers do not, and then reading falls
// back to a pure-JS decoder (writing needs the native one, or codec "none"). node:zlib is looked up at run
// time, not imported, so this module (and the read side with it) also loads in a browser or an edge isolate.
const zlib = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  ?.getBuiltinModule?.("node:zlib") as NodeZlib | undefined;
const zstdCompressSync = zlib?.zstdCompressSync;
const zstdDecompressSync = zlib?.zstdDecompressSync;
// zstd's own number for the compression level parameter (ZSTD_c_compressionLevel).
const ZSTD_LEVEL_PARAMETER = zlib?.constants?.ZSTD_c_compressionLevel ?? 100;

/** True when this runtime's `node:zlib` has zstd (Deno, Bun, Node ≥ 22.15). */
export const HAS_NATIVE_ZSTD: boolean = typeof zstdCompressSync === "function" &&
  typeof zstdDecompressSync === "function";

/** The largest output buffer {@linkcode nodeZstd} allocates at once: 1 MiB + 1, a whole chunk. */
const MAX_OUTPUT_STEP = 1024 * 1024 + 1;

/** Compresses and decompresses single zstd frames. */
export interface Zstd {
  /** One zstd frame holding `bytes`, at compression `level` (zstd's default when absent). */
  compress(bytes: Uint8Array, level?: number): Uint8Array;
  /**
   * The bytes `bytes` decompress to, stopping once they pass `maxLength`: the result holds at most
   * `maxLength + 1` bytes, so a longer output is seen as too long without being produced. Throws an `Error`
   * when `bytes` is not valid zstd.
   */
  decompress(bytes: Uint8Array, maxLength: number): Uint8Array;
}

/**
 * {@linkcode Zstd} from `node:zlib`, as Deno and Bun provide it. Frames it writes record their content size,
 * so a reader needs a window no larger than the content.
 *
 * @example Round trip
 * ```ts
 * import { nodeZstd } from "./zstd.ts";
 * const frame = nodeZstd.compress(new Uint8Array(1000));
 * console.log(nodeZstd.decompress(frame, 1000).length); // 1000
 * ```
 */
export const nodeZstd: Zstd = {
  compress(bytes: Uint8Array, level?: number): Uint8Array {
    if (!zstdCompressSync) {
      throw new Error(
        'zstd compression needs node:zlib zstd (Deno, Bun, or Node 22.15 or later); on this runtime use codec "none"',
      );
    }
    // An output buffer larger than zstd's worst case: when the output fills node:zlib's buffer exactly,
    // Deno and Bun finish the frame and then append a second, empty one.
    const chunkSize = Math.max(64, bytes.length + (bytes.length >>> 7) + 1024);
    const params = level === undefined ? undefined : { [ZSTD_LEVEL_PARAMETER]: level };
    const buffer = zstdCompressSync(bytes, { pledgedSrcSize: bytes.length, chunkSize, params });
    const out = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    return onlyFirstFrame(out);
  },
  decompress(bytes: Uint8Array, maxLength: number): Uint8Array {
    if (!Number.isSafeInteger(maxLength) || maxLength < 0) {
      throw new RangeError(
        `Cannot decompress zstd: maxLength must be a non-negative integer, not ${maxLength}`,
      );
    }
    // One output buffer for the whole of a chunk (faster, and no copies), but never more than 1 MiB at a
    // time: a small object claiming a large length must not allocate that length before it is decoded.
    if (!zstdDecompressSync) return decompressPortably(bytes, maxLength);
    const chunkSize = Math.max(64, Math.min(maxLength + 1, MAX_OUTPUT_STEP));
    let out: Uint8Array;
    try {
      out = zstdDecompressSync(bytes, { maxOutputLength: maxLength + 1, chunkSize });
    } catch (error) {
      if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
        throw new Error(`zstd output exceeds ${maxLength} bytes`, { cause: error });
      }
      const reason = errorMessage(error);
      throw new Error(`zstd failed: ${reason}`, { cause: error });
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  },
};

/**
 * Decompresses one frame with the pure-JS decoder (what runtimes without native zstd use), into a buffer of
 * the frame's declared size once that size is known to be within `maxLength`.
 *
 * @example
 * ```ts
 * import { decompressPortably, nodeZstd } from "./zstd.ts";
 * console.log(decompressPortably(nodeZstd.compress(new Uint8Array(100)), 100).length); // 100
 * ```
 */
export function decompressPortably(bytes: Uint8Array, maxLength: number): Uint8Array {
  let info: ZstdFrameInfo;
  try {
    info = readZstdFrame(bytes);
  } catch (error) {
    throw new Error(`zstd failed: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  const size = info.contentSize;
  if (size !== undefined && size > maxLength) throw new Error(`zstd output exceeds ${maxLength} bytes`);
  let out: Uint8Array;
  try {
    // The decoder allocates the frame's declared size itself (checked against maxLength above), or its
    // window when none is declared. Never hand it an output buffer: it compares that buffer with a number,
    // which turns all of it into a string (a 64 KiB chunk cost about 1.3 ms in chromium).
    out = decompressInJs(bytes.subarray(0, info.frameLength));
    if (size !== undefined && out.length !== size) {
      throw new Error(`it holds ${out.length} bytes, not ${size}`);
    }
  } catch (error) {
    throw new Error(`zstd failed: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  if (out.length > maxLength) throw new Error(`zstd output exceeds ${maxLength} bytes`);
  return out;
}

/** `out` without any empty frames after its first, which would make it more than one frame. */
function onlyFirstFrame(out: Uint8Array): Uint8Array {
  const first = readZstdFrame(out).frameLength;
  for (let at = first; at < out.length;) {
    const extra = readZstdFrame(out.subarray(at));
    if (extra.contentSize !== 0) throw new Error("zstd wrote more than one frame");
    at += extra.frameLength;
  }
  return out.subarray(0, first);
}

/** What a zstd frame's header and block headers say about it. */
export interface ZstdFrameInfo {
  /** The frame's length in bytes, from its magic number to the end of its last block or checksum. */
  frameLength: number;
  /** The decompressed size the frame declares, or `undefined` when it declares none. */
  contentSize: number | undefined;
}

const FRAME_MAGIC = 0xfd2fb528;

/**
 * Walks the zstd frame at the start of `bytes` without decompressing it (RFC 8878, section 3.1.1), so a
 * caller can require a payload to be exactly one frame: zstd decoders skip or decode whatever follows a
 * frame. Throws an `Error` saying what is wrong when the bytes do not start with a complete standard frame.
 *
 * @example Requiring exactly one frame
 * ```ts
 * import { nodeZstd, readZstdFrame } from "./zstd.ts";
 * const frame = nodeZstd.compress(new Uint8Array(100));
 * console.log(readZstdFrame(frame).frameLength === frame.length); // true
 * ```
 */
export function readZstdFrame(bytes: Uint8Array): ZstdFrameInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 5 || view.getUint32(0, true) !== FRAME_MAGIC) {
    throw new Error("the payload does not start with a zstd frame");
  }
  const descriptor = view.getUint8(4);
  if (descriptor & 0x08) throw new Error("the zstd frame header sets a reserved bit");
  const fcsFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const hasChecksum = (descriptor & 0x04) !== 0;
  const dictionaryIdSize = [0, 1, 2, 4][descriptor & 0x03] as number;
  const contentSizeSize = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
  let at = 5 + (singleSegment ? 0 : 1) + dictionaryIdSize;
  if (bytes.length < at + contentSizeSize) throw new Error("the zstd frame header is truncated");
  let contentSize: number | undefined;
  if (contentSizeSize === 1) contentSize = view.getUint8(at);
  else if (contentSizeSize === 2) contentSize = view.getUint16(at, true) + 256;
  else if (contentSizeSize === 4) contentSize = view.getUint32(at, true);
  else if (contentSizeSize === 8) {
    const size = view.getBigUint64(at, true);
    contentSize = size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(size);
  }
  at += contentSizeSize;
  for (;;) {
    if (bytes.length < at + 3) throw new Error("the zstd frame is truncated");
    const header = view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getUint8(at + 2) << 16);
    const type = (header >> 1) & 0x03;
    if (type === 3) throw new Error("the zstd frame holds a block of the reserved type");
    at += 3 + (type === 1 ? 1 : header >>> 3);
    if (header & 1) break;
  }
  at += hasChecksum ? 4 : 0;
  if (bytes.length < at) throw new Error("the zstd frame is truncated");
  return { frameLength: at, contentSize };
}

/** How to store bytes: raw, zstd, or zstd only when it saves at least one sixteenth. */
export type CodecChoice = "auto" | "none" | "zstd";

/** Options for {@linkcode compressPayload}. */
export interface CompressPayloadOptions {
  /** How to store the bytes. @default {"auto"} */
  codec?: CodecChoice;
  /** The zstd implementation. @default {nodeZstd} */
  zstd?: Zstd;
  /** The zstd compression level. @default {zstd's default} */
  level?: number | undefined;
}

/**
 * The codec byte and payload `bytes` are stored as: `[1, frame]` when compressing is chosen, else
 * `[0, bytes]`. `"auto"` compresses when that saves at least one sixteenth of the bytes. Throws `RangeError`
 * for an unknown codec.
 *
 * @example
 * ```ts
 * import { compressPayload } from "./zstd.ts";
 * console.log(compressPayload(new Uint8Array(4096))[0]); // 1
 * ```
 */
export function compressPayload(
  bytes: Uint8Array,
  options: CompressPayloadOptions = {},
): [0 | 1, Uint8Array] {
  const codec = options.codec ?? "auto";
  if (codec !== "auto" && codec !== "none" && codec !== "zstd") {
    throw new RangeError(`Unknown codec ${JSON.stringify(codec)}: expected "auto", "none" or "zstd"`);
  }
  if (codec === "none") return [0, bytes];
  const compressed = (options.zstd ?? nodeZstd).compress(bytes, options.level);
  if (codec === "zstd" || bytes.length - compressed.length >= bytes.length / 16) return [1, compressed];
  return [0, bytes];
}

/** Options for {@linkcode decompressExactly}. */
export interface DecompressExactlyOptions {
  /** The number of bytes the payload must hold. */
  length: number;
  /** The zstd implementation. @default {nodeZstd} */
  zstd?: Zstd;
}

/**
 * The `options.length` bytes the zstd `payload` holds, after checking that it is exactly one frame, that any
 * content size it declares is that length, and that it decompresses to exactly that length; never produces
 * more than one byte past it. Throws an `Error` whose message says what is wrong otherwise.
 *
 * @example
 * ```ts
 * import { decompressExactly, nodeZstd } from "./zstd.ts";
 * const frame = nodeZstd.compress(new Uint8Array(10));
 * console.log(decompressExactly(frame, { length: 10 }).length); // 10
 * ```
 */
export function decompressExactly(payload: Uint8Array, options: DecompressExactlyOptions): Uint8Array {
  const { length } = options;
  const frame = readZstdFrame(payload);
  if (frame.frameLength !== payload.length) {
    throw new Error(`the payload is ${payload.length} bytes but its zstd frame is ${frame.frameLength}`);
  }
  if (frame.contentSize !== undefined && frame.contentSize !== length) {
    throw new Error(`the zstd frame declares ${frame.contentSize} bytes, not ${length}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = (options.zstd ?? nodeZstd).decompress(payload, length);
  } catch (error) {
    throw new Error(`the zstd payload does not decompress: ${(error as Error).message}`, { cause: error });
  }
  if (bytes.length > length) throw new Error(`the zstd payload decompresses to more than ${length} bytes`);
  if (bytes.length !== length) {
    throw new Error(`the zstd payload decompresses to ${bytes.length} bytes, not ${length}`);
  }
  return bytes;
}
