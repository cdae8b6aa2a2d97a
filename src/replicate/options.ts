/**
 * The options of a replicator, and the settings they come to once every default is filled in.
 *
 * @module
 */

import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "../net/backoff.ts";
import type { BlobStore } from "../store/types.ts";
import type { ReplicatorEvent } from "./status.ts";

/** Options of {@linkcode Replicator.start}. */
export interface ReplicatorOptions {
  /** Writable stores; every one receives every image. */
  stores: BlobStore[];
  /** The host name that, with the absolute path, names the database. */
  hostname: string;
  /** A chosen name instead of the derived one. */
  name?: string | undefined;
  /** Bytes per chunk. @default {65536} */
  chunkSize?: number | undefined;
  /** The directory holding the spools of replicated databases. @default {`<tmpdir>/tessera-spool-<uid>`} */
  spoolDir?: string | undefined;
  /** Quiet time after a change before capturing, in ms. @default {100} */
  debounceMs?: number | undefined;
  /** Longest wait after a change while changes keep coming, in ms. @default {1000} */
  maxDelayMs?: number | undefined;
  /** How often the file's size and time are checked, whatever the filesystem events say, in ms. @default {500} */
  pollIntervalMs?: number | undefined;
  /** Use filesystem events. @default {true} */
  watch?: boolean | undefined;
  /** Spool size beyond which older unpublished images are dropped. @default {256 MiB} */
  maxSpoolBytes?: number | undefined;
  /** Backoff after a failed publish: the ceiling of the first wait, in ms. @default {250} */
  retryBaseMs?: number | undefined;
  /** Backoff after a failed publish: the largest wait, in ms. @default {30000} */
  retryMaxMs?: number | undefined;
  /** How long the lease lasts without renewal, in ms. @default {60000} */
  leaseTtlMs?: number | undefined;
  /** Take the lease even when another replicator holds it. */
  takeOver?: boolean | undefined;
  /** How long to wait for the source's write lock when capturing, in ms. @default {10000} */
  busyTimeoutMs?: number | undefined;
  /**
   * Every this many ms, write again the chunks of each store's newest snapshot that the store wrote more
   * than `touchOlderThanMs` ago, so buckets whose lifecycle rules expire old objects keep live chunks.
   * @default {0: never}
   */
  touchIntervalMs?: number | undefined;
  /** Chunks the store wrote longer ago than this are written again by touching, in ms. @default {1 day} */
  touchOlderThanMs?: number | undefined;
  /** Called with each thing worth logging. */
  onEvent?: ((event: ReplicatorEvent) => void) | undefined;
}

/** {@linkcode ReplicatorOptions} with every default filled in (the parts of a replicator read these). */
export interface ReplicatorSettings {
  chunkSize: number;
  /** The host name a capture writes into the manifest's identity: "" when the database has a chosen name. */
  manifestHostname: string;
  debounceMs: number;
  maxDelayMs: number;
  pollIntervalMs: number;
  watch: boolean;
  maxSpoolBytes: number;
  /** The waits between publish tries; a publish loop tries until closed, so `maxAttempts` is not used. */
  retry: RetryPolicy;
  leaseTtlMs: number;
  takeOver: boolean | undefined;
  busyTimeoutMs: number | undefined;
  touchIntervalMs: number;
  /** Left to `touchChunks`' own default when not given. */
  touchOlderThanMs: number | undefined;
}

/** Fills in the defaults of `options`. */
export function replicatorSettings(options: ReplicatorOptions): ReplicatorSettings {
  return {
    chunkSize: options.chunkSize ?? 65536,
    manifestHostname: options.name ? "" : options.hostname,
    debounceMs: options.debounceMs ?? 100,
    maxDelayMs: options.maxDelayMs ?? 1000,
    pollIntervalMs: options.pollIntervalMs ?? 500,
    watch: options.watch ?? true,
    maxSpoolBytes: options.maxSpoolBytes ?? 256 * 1024 * 1024,
    retry: {
      ...DEFAULT_RETRY_POLICY,
      baseDelayMs: options.retryBaseMs ?? 250,
      maxDelayMs: options.retryMaxMs ?? 30_000,
    },
    leaseTtlMs: options.leaseTtlMs ?? 60_000,
    takeOver: options.takeOver,
    busyTimeoutMs: options.busyTimeoutMs,
    touchIntervalMs: options.touchIntervalMs ?? 0,
    touchOlderThanMs: options.touchOlderThanMs,
  };
}
