/**
 * Hand-built zstd frames of RLE blocks, for tests of what a reader does with frames Tessera never writes:
 * no content size, a content size that lies, or far more output than the object claims.
 *
 * @module
 */

/** A zstd frame of `blocks` RLE blocks of `blockSize` copies of `byte`, with a 128 KiB window. */
export function rleFrame(
  byte: number,
  blockSize: number,
  blocks: number,
  options: { contentSize?: number } = {},
) {
  const header = options.contentSize === undefined
    ? [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38] // no content size; window 2^17
    : [0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x38, ...u32(options.contentSize)]; // 4-byte content size
  const out = new Uint8Array(header.length + 4 * blocks);
  out.set(header);
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    const word = (blockSize << 3) | (1 << 1) | last;
    out.set([word & 0xff, (word >> 8) & 0xff, (word >> 16) & 0xff, byte], header.length + 4 * i);
  }
  return out;
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

/** A chunk object with the given header fields around `payload`. */
export function chunkObject(
  payload: Uint8Array,
  fields: { length: number; codec?: number; version?: number; reserved?: number },
): Uint8Array {
  const out = new Uint8Array(12 + payload.length);
  out.set([0x54, 0x53, 0x43, 0x4b, fields.version ?? 1, fields.codec ?? 1, fields.reserved ?? 0, 0]);
  new DataView(out.buffer).setUint32(8, fields.length, true);
  out.set(payload, 12);
  return out;
}
