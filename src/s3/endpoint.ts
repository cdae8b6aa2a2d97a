/**
 * Where a bucket's objects live: AWS regional endpoints, custom endpoints, virtual-host and path-style
 * addressing, and the S3 encoding of object keys in a URL path.
 *
 * @module
 */

/** The parts of the client configuration that decide URLs. */
export interface S3Location {
  bucket: string;
  /** @default {"us-east-1"} */
  region?: string | undefined;
  /** A custom endpoint such as `http://127.0.0.1:9000`; AWS's regional endpoint when absent. */
  endpoint?: string | undefined;
  /** Address the bucket in the path (`host/bucket/key`) rather than the host name (`bucket.host/key`).
   * @default {true for custom endpoints, false for AWS} */
  forcePathStyle?: boolean | undefined;
}

/**
 * The URL of the bucket itself, without a trailing slash: object URLs append `/` and the encoded key.
 *
 * @example
 * ```ts
 * import { bucketUrl } from "./endpoint.ts";
 * console.log(bucketUrl({ bucket: "photos", region: "eu-west-1" }));
 * // https://photos.s3.eu-west-1.amazonaws.com
 * console.log(bucketUrl({ bucket: "photos", endpoint: "http://127.0.0.1:9000" }));
 * // http://127.0.0.1:9000/photos
 * ```
 */
export function bucketUrl(location: S3Location): string {
  const { bucket } = location;
  if (!/^[A-Za-z0-9._-]{1,255}$/.test(bucket)) {
    throw new TypeError(
      `Cannot use bucket "${bucket}": a bucket name has 1 to 255 letters, digits, dots, hyphens or underscores`,
    );
  }
  const region = location.region ?? "us-east-1";
  if (!/^[a-z0-9-]+$/.test(region)) {
    throw new TypeError(`Cannot use region "${region}": expected a name such as "us-east-1"`);
  }
  let base: URL;
  if (location.endpoint) {
    try {
      base = new URL(location.endpoint);
    } catch {
      throw new TypeError(
        `Cannot use S3 endpoint "${location.endpoint}": expected a URL such as http://host:9000`,
      );
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new TypeError(`Cannot use S3 endpoint "${location.endpoint}": only http and https are supported`);
    }
    if (base.search || base.hash || base.username || base.password) {
      throw new TypeError(
        `Cannot use S3 endpoint "${base.origin}": remove the query, fragment or user name from it`,
      );
    }
  } else {
    const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
    base = new URL(`https://s3.${region}.${suffix}`);
  }
  const basePath = base.pathname.replace(/\/+$/, "");
  const pathStyle = location.forcePathStyle ?? Boolean(location.endpoint);
  if (pathStyle || !isDnsCompatible(bucket, base.protocol === "https:")) {
    return `${base.origin}${basePath}/${bucket}`;
  }
  return `${base.protocol}//${bucket}.${base.host}${basePath}`;
}

// A bucket can only be a host label when DNS allows it, and over https a dot would break the certificate
// match, so such buckets fall back to path style.
function isDnsCompatible(bucket: string, https: boolean): boolean {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return false;
  if (bucket.includes("..") || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return false;
  return !(https && bucket.includes("."));
}

/**
 * Encodes an object key for a URL path as S3 canonicalises it: every byte but unreserved characters and
 * `/` percent-encoded, so that the path sent equals the path signed.
 */
export function encodeKey(key: string): string {
  return key.split("/").map(encodeSegment).join("/");
}

function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The URL of one object, with optional query parameters. */
export function objectUrl(bucket: string, key: string, query?: Record<string, string>): string {
  return withQuery(`${bucket}/${encodeKey(key)}`, query);
}

/** Appends query parameters (sorted, RFC 3986 encoded) to a URL. */
export function withQuery(url: string, query?: Record<string, string>): string {
  if (!query) return url;
  const pairs = Object.entries(query).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (pairs.length === 0) return url;
  const encoded = pairs.map((
    [k, v],
  ) => (v === "" ? encodeSegment(k) : `${encodeSegment(k)}=${encodeSegment(v)}`));
  return `${url}?${encoded.join("&")}`;
}
