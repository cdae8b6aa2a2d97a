/**
 * MD5 (RFC 1321), for the `Content-MD5` header that S3 requires on some requests, such as DeleteObjects.
 *
 * WebCrypto offers no MD5, so this module implements it on 32-bit integer arithmetic. MD5 is used here only
 * as a transfer checksum, never for content addressing or anything an attacker could exploit.
 *
 * @module
 */

// Per-step additive constants: floor(abs(sin(i + 1)) * 2^32), as listed in RFC 1321.
// deno-fmt-ignore
const K = Int32Array.from([
  0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
  0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
  0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
  0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
  0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
  0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
  0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
  0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
]);

// Left-rotation amounts, four per round, repeating within the round.
const S = Uint8Array.from([7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21]);

/** Running state, with the message-word scratch buffer reused across blocks. */
class Md5State {
  a = 0x67452301;
  b = 0xefcdab89 | 0;
  c = 0x98badcfe | 0;
  d = 0x10325476;
  readonly x = new Int32Array(16);

  block(view: DataView, offset: number): void {
    const x = this.x;
    for (let i = 0; i < 16; i++) x[i] = view.getInt32(offset + i * 4, true);
    let a = this.a, b = this.b, c = this.c, d = this.d;
    for (let i = 0; i < 64; i++) {
      let f: number;
      let g: number;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
      }
      const s = S[(i >> 4) * 4 + (i & 3)]!;
      const sum = (a + f + K[i]! + x[g]!) | 0;
      a = d;
      d = c;
      c = b;
      b = (b + ((sum << s) | (sum >>> (32 - s)))) | 0;
    }
    this.a = (this.a + a) | 0;
    this.b = (this.b + b) | 0;
    this.c = (this.c + c) | 0;
    this.d = (this.d + d) | 0;
  }
}

/**
 * The 16-byte MD5 digest of `bytes`.
 *
 * @example
 * ```ts
 * import { md5 } from "./md5.ts";
 * console.log(md5(new TextEncoder().encode("abc")).length); // 16
 * ```
 */
export function md5(bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("Cannot compute MD5: expected a Uint8Array");
  const state = new Md5State();
  const length = bytes.byteLength;
  const whole = length - (length % 64);
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  for (let offset = 0; offset < whole; offset += 64) state.block(view, offset);

  // The tail, a 0x80 marker, zero fill and the bit length need one block, or two when the tail is 56+ bytes.
  const tail = new Uint8Array(length % 64 < 56 ? 64 : 128);
  tail.set(bytes.subarray(whole));
  tail[length - whole] = 0x80;
  const tailView = new DataView(tail.buffer);
  const bits = length * 8;
  tailView.setUint32(tail.length - 8, bits % 0x1_0000_0000, true);
  tailView.setUint32(tail.length - 4, Math.floor(bits / 0x1_0000_0000), true);
  for (let offset = 0; offset < tail.length; offset += 64) state.block(tailView, offset);

  const digest = new Uint8Array(16);
  const out = new DataView(digest.buffer);
  out.setInt32(0, state.a, true);
  out.setInt32(4, state.b, true);
  out.setInt32(8, state.c, true);
  out.setInt32(12, state.d, true);
  return digest;
}

/**
 * The MD5 digest of `bytes` in base64, as the `Content-MD5` header wants it.
 *
 * @example
 * ```ts
 * import { md5Base64 } from "./md5.ts";
 * console.log(md5Base64(new Uint8Array())); // "1B2M2Y8AsgTpgAmY7PhCfg=="
 * ```
 */
export function md5Base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...md5(bytes)));
}

/**
 * The MD5 digest of `bytes` as 32 lowercase hex digits, as S3 shows it in the ETag of a single-part upload.
 *
 * @example
 * ```ts
 * import { md5Hex } from "./md5.ts";
 * console.log(md5Hex(new TextEncoder().encode("abc"))); // "900150983cd24fb0d6963f7d28e17f72"
 * ```
 */
export function md5Hex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of md5(bytes)) hex += byte.toString(16).padStart(2, "0");
  return hex;
}
