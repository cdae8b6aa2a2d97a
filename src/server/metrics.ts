/**
 * The server's Prometheus metrics (`GET /metrics`, text format 0.0.4): requests and their latency by route,
 * each replica's sequence, lag and chunk reads, the store requests and bytes its replicas made (counted
 * by {@linkcode countingStore} around the stores the server opens), and the objects endpoint's answers by
 * object kind and status.
 *
 * @module
 */

import type { Replica } from "../replica/replica.ts";
import type { BlobStore, GetOptions, ListOptions, PutOptions, StoreCallOptions } from "../store/types.ts";

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Store requests and bytes read, by operation. */
export interface StoreCounters {
  requests: Map<string, number>;
  bytes: number;
}

/** A new, empty {@linkcode StoreCounters}. */
export function storeCounters(): StoreCounters {
  return { requests: new Map(), bytes: 0 };
}

function count(counters: StoreCounters, op: string): void {
  counters.requests.set(op, (counters.requests.get(op) ?? 0) + 1);
}

/** `store`, counting each request and the bytes its reads return into `counters`. */
export function countingStore(store: BlobStore, counters: StoreCounters): BlobStore {
  return {
    description: store.description,
    capabilities: store.capabilities,
    async get(key: string, options?: GetOptions) {
      count(counters, "get");
      const result = await store.get(key, options);
      if (result.status === "ok") counters.bytes += result.body.length;
      return result;
    },
    head(key: string, options?: StoreCallOptions) {
      count(counters, "head");
      return store.head(key, options);
    },
    put(key: string, body: Uint8Array, options?: PutOptions) {
      count(counters, "put");
      return store.put(key, body, options);
    },
    list(prefix: string, options?: ListOptions) {
      count(counters, "list");
      return store.list(prefix, options);
    },
    delete(key: string, options?: StoreCallOptions) {
      count(counters, "delete");
      return store.delete(key, options);
    },
  };
}

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string>): string {
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** One app's metrics. */
export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #latency = new Map<string, Histogram>();
  readonly #objects = new Map<string, number>();
  readonly #objectBytes = new Map<string, number>();
  #objectBuffered = 0;
  #objectRefusals = 0;
  readonly #started = Date.now();

  /** Records a request: its route, status and duration in seconds. */
  observe(route: string, status: number, seconds: number): void {
    const key = `${route}\u0000${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    let histogram = this.#latency.get(route);
    if (!histogram) {
      histogram = { buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#latency.set(route, histogram);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) histogram.buckets[i]!++;
    histogram.sum += seconds;
    histogram.count++;
  }

  /**
   * Records an answer of the objects endpoint: the kind of object asked for (`pointer`, `manifest`, `chunk`,
   * `pack`, or `other` for keys it does not serve) and its status.
   */
  observeObject(kind: string, status: number): void {
    const key = `${kind}\u0000${status}`;
    this.#objects.set(key, (this.#objects.get(key) ?? 0) + 1);
    this.#objectBytes.set(kind, this.#objectBytes.get(kind) ?? 0);
  }

  /** Records the bytes of an object's body its client took, once it took all it will. */
  sentObjectBytes(kind: string, bytes: number): void {
    this.#objectBytes.set(kind, (this.#objectBytes.get(kind) ?? 0) + bytes);
  }

  /** Records the bytes of object bodies waiting for their clients now. */
  objectsBuffered(bytes: number): void {
    this.#objectBuffered = bytes;
  }

  /** Records an answer refused because too many bytes of object bodies were waiting for their clients. */
  objectBufferRefused(): void {
    this.#objectRefusals++;
  }

  /** The text of `GET /metrics`; with `gauges.objects`, the objects endpoint's counters too. */
  render(
    databases: ReadonlyMap<string, { replica: Replica | undefined; store: StoreCounters }>,
    gauges: { inFlight: number; streams: number; objects?: boolean | undefined },
  ): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string) =>
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    family("tessera_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (const [key, n] of this.#requests) {
      const [route, status] = key.split("\u0000") as [string, string];
      out.push(`tessera_http_requests_total${labels({ route, status })} ${n}`);
    }
    family("tessera_http_request_duration_seconds", "histogram", "Time to answer a request, by route.");
    for (const [route, h] of this.#latency) {
      BUCKETS.forEach((le, i) => {
        out.push(
          `tessera_http_request_duration_seconds_bucket${labels({ route, le: String(le) })} ${h.buckets[i]}`,
        );
      });
      out.push(`tessera_http_request_duration_seconds_bucket${labels({ route, le: "+Inf" })} ${h.count}`);
      out.push(`tessera_http_request_duration_seconds_sum${labels({ route })} ${h.sum}`);
      out.push(`tessera_http_request_duration_seconds_count${labels({ route })} ${h.count}`);
    }
    family("tessera_http_requests_in_flight", "gauge", "Requests being answered now.");
    out.push(`tessera_http_requests_in_flight ${gauges.inFlight}`);
    family("tessera_hrana_streams", "gauge", "Hrana streams held between requests.");
    out.push(`tessera_hrana_streams ${gauges.streams}`);
    family("tessera_uptime_seconds", "gauge", "Seconds since the app was created.");
    out.push(`tessera_uptime_seconds ${(Date.now() - this.#started) / 1000}`);
    if (gauges.objects) {
      family(
        "tessera_object_requests_total",
        "counter",
        "Answers of /v1/objects, by object kind and status (304: not modified).",
      );
      for (const [key, n] of this.#objects) {
        const [kind, status] = key.split("\u0000") as [string, string];
        out.push(`tessera_object_requests_total${labels({ kind, status })} ${n}`);
      }
      family(
        "tessera_object_sent_bytes_total",
        "counter",
        "Bytes of object bodies (200 and 206) /v1/objects clients took, by object kind.",
      );
      for (const [kind, n] of this.#objectBytes) {
        out.push(`tessera_object_sent_bytes_total${labels({ kind })} ${n}`);
      }
      family(
        "tessera_object_buffered_bytes",
        "gauge",
        "Bytes of object bodies read from the store that clients have not taken yet.",
      );
      out.push(`tessera_object_buffered_bytes ${this.#objectBuffered}`);
      family(
        "tessera_object_buffer_refusals_total",
        "counter",
        "Answers of /v1/objects refused (503) because maxBufferedBytes were waiting for clients.",
      );
      out.push(`tessera_object_buffer_refusals_total ${this.#objectRefusals}`);
    }

    const rows: [string, string, string, (d: string, r: Replica) => number | undefined][] = [
      [
        "tessera_replica_sequence",
        "gauge",
        "Sequence of the snapshot the replica serves.",
        (_, r) => r.sequence,
      ],
      [
        "tessera_replica_newest_sequence",
        "gauge",
        "Newest sequence the replica has prepared.",
        (_, r) => r.status().newestSequence,
      ],
      [
        "tessera_replica_lag_seconds",
        "gauge",
        "At most how far the served snapshot is behind the store.",
        (_, r) => r.lagMs / 1000,
      ],
      [
        "tessera_replica_snapshot_ctime_seconds",
        "gauge",
        "When the source changed before the served snapshot.",
        (_, r) => r.snapshotCtime / 1000,
      ],
      [
        "tessera_replica_checks_total",
        "counter",
        "Checks of the store for newer snapshots.",
        (_, r) => r.status().checks,
      ],
      [
        "tessera_replica_check_failures",
        "gauge",
        "Failed checks of the store in a row.",
        (_, r) => r.status().consecutiveFailures,
      ],
      [
        "tessera_replica_chunk_bytes",
        "gauge",
        "Bytes of chunks held in memory.",
        (_, r) => r.status().memory.chunkBytes,
      ],
      [
        "tessera_replica_chunk_hits_total",
        "counter",
        "Chunk reads served from memory.",
        (_, r) => r.status().memory.chunkHits,
      ],
      [
        "tessera_replica_chunk_misses_total",
        "counter",
        "Chunk reads that had to fetch the chunk.",
        (_, r) => r.status().memory.chunkMisses,
      ],
      [
        "tessera_replica_chunks_loaded_total",
        "counter",
        "Chunks fetched for queries, refreshes and hydration.",
        (_, r) => r.status().memory.chunksLoaded,
      ],
    ];
    for (const [name, type, help, read] of rows) {
      family(name, type, help);
      for (const [database, { replica }] of databases) {
        if (!replica || replica.closed) continue;
        const value = read(database, replica);
        if (value !== undefined && Number.isFinite(value)) {
          out.push(`${name}${labels({ database })} ${value}`);
        }
      }
    }
    family("tessera_store_requests_total", "counter", "Requests to the stores, by database and operation.");
    for (const [database, { store }] of databases) {
      for (const [op, n] of store.requests) {
        out.push(`tessera_store_requests_total${labels({ database, op })} ${n}`);
      }
    }
    family("tessera_store_read_bytes_total", "counter", "Bytes read from the stores, by database.");
    for (const [database, { store }] of databases) {
      out.push(`tessera_store_read_bytes_total${labels({ database })} ${store.bytes}`);
    }
    return out.join("\n") + "\n";
  }
}
