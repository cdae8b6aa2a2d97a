/**
 * The spool: every consistent image a writer has captured but not yet published to every store, kept on
 * local disk so that a store outage or a crash loses nothing it had seen, and the record of the last
 * capture that lets the next one read only what changed. The replicator keeps one per database under
 * `<spoolDir>/replicate/<name>/`; `tessera sync` keeps its own under `<spoolDir>/sync/<name>/` (an image
 * normally leaves it as soon as the sync publishes it).
 *
 * Layout:
 * - `chunks/<hex id>`: a chunk some pending image holds that may not be in every store, stored as the chunk
 *   object it is uploaded as (`docs/FORMAT.md`: header, zstd);
 * - `pending/<16 hex sequence>.json`: one captured image (its chunk ids, chunk 0, sizes, times) and the
 *   stores it has reached;
 * - `capture.json`: what the last capture saw (evidence, chunk ids, the last sequence it assigned), so the
 *   next capture reads only what changed;
 * - `identity.json`: this spool's writer id, stable across restarts;
 * - `owner.json`: the process using this spool (one at a time, see {@linkcode claimOwner});
 * - `status.json`, `control/`: the replicator's, see `replicate/control.ts`.
 *
 * Invariant: every chunk id of a pending image is either a file in `chunks/` or in every store (it was in
 * the last image fully published before that image was captured). Chunk files are deleted only when no
 * pending image names them.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { hostname as osHostname, tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fromBase64, toBase64 } from "../bytes.ts";
import { decodeChunk } from "../chunk/codec.ts";
import { hexToId, ZERO_HEX } from "../chunk/ids.ts";
import { TesseraError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import type { SourceEvidence } from "./source.ts";

/** Default spool directory: its contents only save work, or hold images not yet published. */
export function defaultSpoolDir(): string {
  // Per user: a record another user could write would decide what this user's syncs upload.
  let user = "";
  try {
    user = `-${userInfo().uid}`;
  } catch {
    // No user database (some containers): a shared name, still created with mode 0700.
  }
  return join(tmpdir(), `tessera-spool${user}`);
}

/** Who keeps a spool: the replicator of a database, or `tessera sync`. */
export type SpoolKind = "replicate" | "sync";

/** One captured image waiting to be published. */
export interface PendingImage {
  version: 1;
  sequence: number;
  createdMs: number;
  sourceMtimeMs: number;
  sourcePath: string;
  /** The host name in the manifest's identity ("" when the database has a chosen name). */
  hostname: string;
  pageSize: number;
  imageLength: number;
  chunkSize: number;
  /** Hex ids of chunks 1 .. n-1 (the all-zero id for zero chunks). */
  ids: string[];
  /** Chunk 0, base64 (it goes inline into the manifest). */
  chunk0: string;
  /** Hex SHA-256 of the whole image when the capture read it whole, else null. */
  imageSha256: string | null;
  /** Descriptions of the stores this image has been published to. */
  publishedTo: string[];
}

/** What the last capture saw. */
export interface CaptureRecord {
  version: 1;
  /** The last sequence a capture assigned. */
  sequence: number;
  chunkSize: number;
  pageSize: number;
  imageLength: number;
  evidence: SourceEvidence;
  ids: string[];
  /**
   * Hex SHA-256 of chunk 0 as captured, so a capture that finds the same content under new evidence (a
   * checkpoint moved the WAL into the file) makes no image. Absent in records of older versions.
   */
  chunk0Sha256?: string | undefined;
  /**
   * Hex SHA-256 of the manifest this record's image became, once it reached every store (`tessera sync`
   * sets it). While every store's pointer still names that manifest, the stores hold every chunk in `ids`.
   */
  manifestSha256?: string | undefined;
}

/** The spool of one database. Not safe for two processes: the replicator holds `owner.json` first. */
export class Spool {
  readonly dir: string;
  readonly #chunkDir: string;
  readonly #pendingDir: string;
  readonly #pending = new Map<number, PendingImage>();
  // How many pending images name each spooled chunk file.
  readonly #refs = new Map<string, number>();
  // The chunk files, with their sizes.
  readonly #files = new Map<string, number>();
  // The chunk files this process wrote, with their sizes.
  readonly #writtenHere = new Map<string, number>();
  #chunkBytes = 0;
  #capture: CaptureRecord | undefined;

  private constructor(dir: string) {
    this.dir = dir;
    this.#chunkDir = join(dir, "chunks");
    this.#pendingDir = join(dir, "pending");
  }

  /** The spool directory of database `name` under `spoolDir`. */
  static dirFor(spoolDir: string, name: string, kind: SpoolKind = "replicate"): string {
    return join(spoolDir, kind, name);
  }

  /**
   * Claims the spool of database `name` for this process ({@linkcode claimOwner}) and only then opens it:
   * opening sweeps chunk files no pending image names, which, in a spool another process still uses, would
   * be files its capture has just written. With `waitMs`, a spool another live process holds is waited for
   * that long before `LEASE_HELD` is thrown. Returns the spool and the release of the claim.
   */
  static async claim(
    spoolDir: string,
    name: string,
    kind: SpoolKind,
    path: string,
    options: {
      waitMs?: number | undefined;
      signal?: AbortSignal | undefined;
      /** Told, once, why the claim waits. */
      onWait?: ((reason: string) => void) | undefined;
    } = {},
  ): Promise<{ spool: Spool; release: () => Promise<void> }> {
    const dir = Spool.dirFor(spoolDir, name, kind);
    if (kind === "sync") {
      // Before this layout a sync kept a record file at sync/<name>.json: it is no longer read, and for a
      // database named "<name>.json" it would stand where the spool folder goes.
      await rm(`${dir}.json`, { force: true }).catch(() => {});
      if (dir.endsWith(".json") && (await stat(dir).catch(() => undefined))?.isFile()) {
        await rm(dir, { force: true });
      }
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const deadline = Date.now() + (options.waitMs ?? 0);
    let release: () => Promise<void>;
    let told = false;
    for (;;) {
      try {
        release = await claimOwner(dir, path, kind);
        break;
      } catch (error) {
        if (!(error instanceof TesseraError && error.code === "LEASE_HELD") || Date.now() >= deadline) {
          throw error;
        }
        if (!told) {
          told = true;
          options.onWait?.(error.message);
        }
        options.signal?.throwIfAborted();
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    try {
      return { spool: await Spool.open(spoolDir, name, kind), release };
    } catch (error) {
      await release();
      throw error;
    }
  }

  /**
   * Opens (creating) the spool and reads what a previous run left in it. The caller holds the spool's
   * claim ({@linkcode Spool.claim} does both).
   */
  static async open(spoolDir: string, name: string, kind: SpoolKind = "replicate"): Promise<Spool> {
    const spool = new Spool(Spool.dirFor(spoolDir, name, kind));
    await mkdir(spool.#chunkDir, { recursive: true, mode: 0o700 });
    await mkdir(spool.#pendingDir, { recursive: true, mode: 0o700 });
    await spool.#load();
    return spool;
  }

  async #load(): Promise<void> {
    // Temporary files of writes a crash interrupted.
    for (const file of await readdir(this.dir)) {
      if (file.startsWith(".") && file.endsWith(".tmp")) await unlink(join(this.dir, file)).catch(() => {});
    }
    let damaged = false;
    for (const file of await readdir(this.#pendingDir)) {
      if (!/^[0-9a-f]{16}\.json$/.test(file)) {
        // A temporary file an interrupted write left behind.
        if (file.endsWith(".tmp")) await unlink(join(this.#pendingDir, file)).catch(() => {});
        continue;
      }
      try {
        const image = JSON.parse(await readFile(join(this.#pendingDir, file), "utf8")) as PendingImage;
        if (image.version === 1 && Number.isSafeInteger(image.sequence) && Array.isArray(image.ids)) {
          this.#pending.set(image.sequence, image);
        }
      } catch {
        // A damaged entry is dropped and its chunk files are collected below. The capture record is
        // forgotten too, so the next capture makes a new image of the current state instead of finding
        // "nothing changed".
        await unlink(join(this.#pendingDir, file)).catch(() => {});
        damaged = true;
      }
    }
    const names = await readdir(this.#chunkDir);
    for (const file of names) {
      const path = join(this.#chunkDir, file);
      if (!/^[0-9a-f]{64}$/.test(file)) {
        await unlink(path).catch(() => {});
        continue;
      }
      const size = (await stat(path)).size;
      this.#files.set(file, size);
      this.#chunkBytes += size;
    }
    for (const image of this.#pending.values()) this.#addRefs(image, +1);
    await this.sweep();
    try {
      const record = JSON.parse(await readFile(join(this.dir, "capture.json"), "utf8")) as CaptureRecord;
      if (isCaptureRecord(record)) this.#capture = record;
      else if (record && Number.isSafeInteger(record.sequence) && record.sequence > 0) {
        // A damaged record: the next capture reads everything, but sequences still move forward.
        this.#capture = { ...forgotten(), sequence: record.sequence };
      }
    } catch {
      this.#capture = undefined;
    }
    if (damaged && this.#capture) {
      // Keep the sequence it reached: only the evidence is forgotten.
      this.#capture = { ...forgotten(), sequence: this.#capture.sequence };
      await this.setCapture(this.#capture);
    }
  }

  /** This spool's writer id: stable across restarts, different on every other host or spool. */
  async writerId(hostname: string): Promise<string> {
    const path = join(this.dir, "identity.json");
    try {
      const saved = JSON.parse(await readFile(path, "utf8")) as { writer?: unknown };
      if (typeof saved.writer === "string" && saved.writer.length > 0) return saved.writer;
    } catch {
      // None yet.
    }
    const writer = `replicate:${hostname.slice(0, 120)}:${randomUUID().slice(0, 8)}`;
    await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify({ writer })));
    return writer;
  }

  /** What the last capture saw, if the spool remembers it. */
  get capture(): CaptureRecord | undefined {
    return this.#capture;
  }

  /** Pending images, oldest first. */
  pending(): PendingImage[] {
    return [...this.#pending.values()].sort((a, b) => a.sequence - b.sequence);
  }

  /** Bytes of spooled chunk files. */
  get chunkBytes(): number {
    return this.#chunkBytes;
  }

  /** Whether the chunk `hex` is spooled. */
  hasChunk(hex: string): boolean {
    return this.#files.has(hex);
  }

  /**
   * The spooled chunk object `hex`, checked (decoded, and its bytes hashed to `hex`); `undefined` when
   * absent or damaged.
   */
  async readChunk(hex: string): Promise<Uint8Array | undefined> {
    try {
      const object = new Uint8Array(await readFile(join(this.#chunkDir, hex)));
      // A file this process wrote and renamed into place is whole (a crash would have ended the process);
      // its bytes were hashed to `hex` as they were captured. Only files from an earlier run are checked.
      if (this.#writtenHere.get(hex) !== object.length) await decodeChunk(hexToId(hex), object);
      return object;
    } catch {
      return undefined;
    }
  }

  /**
   * Writes the chunk object of `hex` for an image being captured, unless it is spooled already. A file no
   * pending image names is removed by {@linkcode sweep}.
   */
  async writeChunk(hex: string, object: Uint8Array): Promise<void> {
    if (hex === ZERO_HEX || this.#files.has(hex)) return;
    const path = join(this.#chunkDir, hex);
    // A crash can leave a file with the right name and short bytes: readChunk checks it.
    const temp = `${path}.${randomUUID().slice(0, 8)}.tmp`;
    await writeFile(temp, object);
    await rename(temp, path);
    this.#files.set(hex, object.length);
    this.#chunkBytes += object.length;
    this.#writtenHere.set(hex, object.length);
  }

  /** Removes chunk files no pending image names (left by a capture that failed before it was recorded). */
  async sweep(): Promise<void> {
    for (const hex of [...this.#files.keys()]) {
      if (!this.#refs.has(hex)) await this.#removeFile(hex);
    }
  }

  async #removeFile(hex: string): Promise<void> {
    await unlink(join(this.#chunkDir, hex)).catch(() => {});
    this.#chunkBytes = Math.max(0, this.#chunkBytes - (this.#files.get(hex) ?? 0));
    this.#files.delete(hex);
    this.#writtenHere.delete(hex);
  }

  /**
   * Records a captured image and the capture record that goes with it. Its chunks that are spooled stay
   * spooled while it is pending.
   */
  async addPending(image: PendingImage, record: CaptureRecord): Promise<void> {
    await writeFileAtomic(this.#pendingPath(image.sequence), new TextEncoder().encode(JSON.stringify(image)));
    await writeFileAtomic(join(this.dir, "capture.json"), new TextEncoder().encode(JSON.stringify(record)));
    this.#capture = record;
    this.#pending.set(image.sequence, image);
    this.#addRefs(image, +1);
  }

  /** Records a capture that found nothing new, or a record to start over from (`undefined`). */
  async setCapture(record: CaptureRecord | undefined): Promise<void> {
    const path = join(this.dir, "capture.json");
    if (record === undefined) await rm(path, { force: true });
    else await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(record)));
    this.#capture = record;
  }

  /** Marks `sequence` as published to `store`; once every store in `stores` has it, it leaves the spool. */
  async markPublished(sequence: number, store: string, stores: readonly string[]): Promise<void> {
    const image = this.#pending.get(sequence);
    if (!image) return;
    if (!image.publishedTo.includes(store)) image.publishedTo.push(store);
    if (stores.every((s) => image.publishedTo.includes(s))) {
      await this.drop(sequence);
      return;
    }
    await writeFileAtomic(this.#pendingPath(sequence), new TextEncoder().encode(JSON.stringify(image)));
  }

  /** Removes a pending image, and the chunk files no other pending image names. */
  async drop(sequence: number): Promise<void> {
    const image = this.#pending.get(sequence);
    if (!image) return;
    await unlink(this.#pendingPath(sequence)).catch(() => {});
    this.#pending.delete(sequence);
    for (const hex of this.#addRefs(image, -1)) await this.#removeFile(hex);
  }

  /** Bytes the spool holds: chunk files plus the pending entries' inline chunk 0. */
  get bytes(): number {
    let total = this.#chunkBytes;
    for (const image of this.#pending.values()) total += image.chunk0.length + image.ids.length * 65;
    return total;
  }

  // Adds `delta` to the reference count of each spooled chunk `image` names; returns the ids whose count
  // reached zero.
  #addRefs(image: PendingImage, delta: 1 | -1): string[] {
    const freed: string[] = [];
    for (const hex of new Set(image.ids)) {
      if (hex === ZERO_HEX) continue;
      const count = this.#refs.get(hex);
      if (delta > 0) {
        if (count !== undefined) this.#refs.set(hex, count + 1);
        else if (this.#files.has(hex)) this.#refs.set(hex, 1);
      } else if (count !== undefined) {
        if (count <= 1) {
          this.#refs.delete(hex);
          freed.push(hex);
        } else this.#refs.set(hex, count - 1);
      }
    }
    return freed;
  }

  #pendingPath(sequence: number): string {
    return join(this.#pendingDir, `${sequence.toString(16).padStart(16, "0")}.json`);
  }
}

/** Chunk 0 of a pending image. */
export function pendingChunk0(image: PendingImage): Uint8Array {
  return fromBase64(image.chunk0);
}

/** Encodes chunk 0 for a pending image. */
export function encodeChunk0(bytes: Uint8Array): string {
  return toBase64(bytes);
}

// A record that proves nothing: its sizes match no source, so the next capture reads the whole database.
function forgotten(): CaptureRecord {
  return {
    version: 1,
    sequence: 0,
    chunkSize: 0,
    pageSize: 0,
    imageLength: -1,
    evidence: { size: -1, mtimeMs: -1, ino: -1, changeCounter: -1, wal: null },
    ids: [],
  };
}

const HEX_ID = /^[0-9a-f]{64}$/;

// A record that is not a capture record shape for shape is not used: the next capture then reads
// everything, which is slow but always right.
function isCaptureRecord(record: CaptureRecord): boolean {
  if (typeof record !== "object" || record === null || record.version !== 1) return false;
  const counts = [record.chunkSize, record.pageSize, record.imageLength, record.sequence];
  if (!counts.every((n) => Number.isSafeInteger(n) && n >= 0) || record.chunkSize <= 0) return false;
  if (!Array.isArray(record.ids)) return false;
  if (record.ids.length !== Math.max(0, Math.ceil(record.imageLength / record.chunkSize) - 1)) return false;
  if (!record.ids.every((id) => typeof id === "string" && HEX_ID.test(id))) return false;
  for (const hex of [record.chunk0Sha256, record.manifestSha256]) {
    if (hex !== undefined && (typeof hex !== "string" || !HEX_ID.test(hex))) return false;
  }
  const e = record.evidence;
  if (typeof e !== "object" || e === null) return false;
  if (![e.size, e.mtimeMs, e.ino, e.changeCounter].every((n) => typeof n === "number")) return false;
  return e.wal === null ||
    (typeof e.wal === "object" &&
      [e.wal.salt1, e.wal.salt2, e.wal.frames].every((n) => typeof n === "number"));
}

// Spools claimed by this process: a second user in the same process is refused as another would be.
const claimed = new Set<string>();

/**
 * Claims `owner.json` of the spool `dir` for this process, for `doing` the database at `path`; throws
 * `LEASE_HELD` when a live process on this host holds it. Returns the release.
 */
export async function claimOwner(
  dir: string,
  path: string,
  doing: SpoolKind = "replicate",
): Promise<() => Promise<void>> {
  if (claimed.has(dir)) {
    throw new TesseraError(
      "LEASE_HELD",
      doing === "replicate"
        ? `Cannot replicate "${path}": this process already replicates it from spool ${dir}`
        : `Cannot sync "${path}": this process is syncing it already (spool ${dir})`,
    );
  }
  claimed.add(dir);
  try {
    return await claimOwnerFile(dir, path, doing);
  } catch (error) {
    claimed.delete(dir);
    throw error;
  }
}

async function claimOwnerFile(dir: string, path: string, doing: SpoolKind): Promise<() => Promise<void>> {
  const file = join(dir, "owner.json");
  const me = { pid: process.pid, hostname: osHostname(), path, startedMs: Date.now() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, "wx", 0o600);
      await handle.writeFile(JSON.stringify(me));
      await handle.close();
      return async () => {
        const now = await readOwner(dir);
        if (now?.pid === me.pid) await unlink(file).catch(() => {});
        claimed.delete(dir);
      };
    } catch (error) {
      if ((error as { code?: string }).code !== "EEXIST") throw error;
      const owner = await readOwner(dir);
      if (owner && owner.pid !== process.pid && alive(owner.pid)) {
        throw new TesseraError(
          "LEASE_HELD",
          doing === "replicate"
            ? `Cannot replicate "${path}": replicator pid ${owner.pid} already replicates it from spool ${dir}; ` +
              "stop it first (tessera status shows it)"
            : `Cannot sync "${path}": tessera sync pid ${owner.pid} is syncing it now (spool ${dir}); ` +
              `sync again when it has finished (if no sync runs, the pid was reused: remove ${file})`,
        );
      }
      if (!owner && await youngerThan(file, FRESH_OWNER_MS)) {
        // Created but not yet written: another process is claiming it at this moment.
        throw new TesseraError(
          "LEASE_HELD",
          `Cannot claim ${file}: another ${
            doing === "replicate" ? "replicator" : "tessera sync"
          } is claiming it`,
        );
      }
      await unlink(file).catch(() => {});
    }
  }
  throw new TesseraError(
    "LEASE_HELD",
    `Cannot claim ${file}: another ${
      doing === "replicate" ? "replicator" : "tessera sync"
    } claimed it at the same time`,
  );
}

// An owner file with no owner in it yet is someone's claim in progress while it is this young.
const FRESH_OWNER_MS = 10_000;

async function youngerThan(file: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(file)).mtimeMs < ms;
  } catch {
    return false;
  }
}

async function readOwner(dir: string): Promise<{ pid: number } | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, "owner.json"), "utf8"));
  } catch {
    return undefined;
  }
}

/** Whether process `pid` exists on this host. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}
