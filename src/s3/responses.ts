/**
 * Typed readers for the S3 XML documents Tessera consumes, and the one XML request body it sends.
 *
 * Readers throw `TesseraError` with code `S3_BAD_RESPONSE` for anything that is not the expected document,
 * so a caller never acts on a half-understood answer (for example, stops listing early).
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { childElements, childText, escapeXml, parseXml, type XmlElement } from "./xml.ts";

/** One object in a listing. */
export interface S3ObjectSummary {
  /** The object key, decoded. */
  key: string;
  /** The size in bytes. */
  size: number;
  /** The ETag exactly as S3 sent it, quotes included. */
  etag: string;
  /** When the object was last written; undefined when the server sent no parseable date. */
  lastModified: Date | undefined;
}

/** One page of a ListObjectsV2 response. */
export interface ListObjectsV2Page {
  /** The objects on this page, in the order S3 sent them. */
  contents: S3ObjectSummary[];
  /** The key prefixes rolled up by the delimiter, in the order S3 sent them. */
  commonPrefixes: string[];
  /** True when more pages follow. */
  isTruncated: boolean;
  /** The token that asks for the next page; set whenever `isTruncated` is true. */
  nextContinuationToken: string | undefined;
}

/** The fields of an S3 `<Error>` document. */
export interface S3ErrorBody {
  /** The machine-readable error code, such as `NoSuchKey`. */
  code: string;
  /** The human-readable message; empty when the server sent none. */
  message: string;
  /** The request id, for a support case. */
  requestId: string | undefined;
  /** The bucket or key the error is about. */
  resource: string | undefined;
}

/** The outcome of a DeleteObjects request. */
export interface DeleteObjectsResult {
  /** Keys S3 reports as deleted; empty in quiet mode. */
  deleted: string[];
  /** Keys S3 failed to delete, with its reason for each. */
  errors: Array<{ key: string; code: string; message: string }>;
}

/** Options for {@linkcode buildDeleteObjectsBody}. */
export interface DeleteObjectsBodyOptions {
  /** Ask S3 to report only the keys it failed to delete. */
  quiet: boolean;
}

/** The most keys one DeleteObjects request may name. */
export const MAX_DELETE_KEYS = 1000;

function bad(what: string, problem: string): never {
  throw new TesseraError("S3_BAD_RESPONSE", `Cannot parse ${what} response: ${problem}`);
}

/** Parses `xml` and checks its root is `expected`, turning an `<Error>` document into a thrown error. */
function parseRoot(xml: string, expected: string, what: string): XmlElement {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (error) {
    if (!(error instanceof TesseraError)) throw error;
    const problem = error.message.replace(/^Cannot parse XML: /, "invalid XML: ");
    throw new TesseraError("S3_BAD_RESPONSE", `Cannot parse ${what} response: ${problem}`, { cause: error });
  }
  if (root.name === "Error") {
    const body = readError(root);
    bad(what, `the server returned an error document: ${body?.code ?? "no code"}: ${body?.message ?? ""}`);
  }
  if (root.name !== expected) bad(what, `expected a <${expected}> document, got <${root.name.slice(0, 40)}>`);
  return root;
}

function parseDate(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const date = new Date(text.trim());
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Undoes `encoding-type=url`, which S3 applies with `+` for a space. */
function urlDecode(text: string, what: string): string {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    bad(what, `"${text}" is not valid URL encoding`);
  }
}

function readSummary(contents: XmlElement, decode: (text: string) => string): S3ObjectSummary {
  const what = "ListObjectsV2";
  const rawKey = childText(contents, "Key");
  if (rawKey === undefined) bad(what, "an entry of <Contents> has no <Key>");
  const key = decode(rawKey);
  const sizeText = childText(contents, "Size")?.trim() ?? "";
  const size = /^[0-9]+$/.test(sizeText) ? Number(sizeText) : NaN;
  if (!Number.isSafeInteger(size)) bad(what, `key "${key}" has an invalid <Size> "${sizeText.slice(0, 40)}"`);
  return {
    key,
    size,
    etag: childText(contents, "ETag") ?? "",
    lastModified: parseDate(childText(contents, "LastModified")),
  };
}

/**
 * Reads one page of a ListObjectsV2 response, decoding keys when the request asked for `encoding-type=url`.
 *
 * @example
 * ```ts
 * import { parseListObjectsV2 } from "./responses.ts";
 * const page = parseListObjectsV2(
 *   "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key><Size>3</Size></Contents></ListBucketResult>",
 * );
 * console.log(page.contents[0]?.key, page.contents[0]?.size); // "a" 3
 * ```
 */
export function parseListObjectsV2(xml: string): ListObjectsV2Page {
  const what = "ListObjectsV2";
  const root = parseRoot(xml, "ListBucketResult", what);
  const encoded = childText(root, "EncodingType")?.trim().toLowerCase() === "url";
  const decode = encoded ? (text: string) => urlDecode(text, what) : (text: string) => text;

  const truncatedText = childText(root, "IsTruncated")?.trim() ?? "false";
  if (truncatedText !== "true" && truncatedText !== "false") {
    bad(what, `<IsTruncated> is "${truncatedText.slice(0, 40)}", expected "true" or "false"`);
  }
  const isTruncated = truncatedText === "true";
  const token = childText(root, "NextContinuationToken");
  const nextContinuationToken = token === undefined || token === "" ? undefined : token;
  if (isTruncated && nextContinuationToken === undefined) {
    bad(what, "the page is truncated but has no <NextContinuationToken>, so the listing cannot continue");
  }

  const commonPrefixes: string[] = [];
  for (const group of childElements(root, "CommonPrefixes")) {
    for (const prefix of childElements(group, "Prefix")) commonPrefixes.push(decode(prefix.text));
  }
  return {
    contents: childElements(root, "Contents").map((contents) => readSummary(contents, decode)),
    commonPrefixes,
    isTruncated,
    nextContinuationToken,
  };
}

function readError(root: XmlElement): S3ErrorBody | undefined {
  const code = childText(root, "Code")?.trim();
  if (code === undefined || code === "") return undefined;
  return {
    code,
    message: childText(root, "Message") ?? "",
    requestId: childText(root, "RequestId"),
    resource: childText(root, "Resource"),
  };
}

/**
 * Reads an S3 `<Error>` document; undefined, never an exception, when `text` is empty, not XML, or another
 * document.
 *
 * @example
 * ```ts
 * import { parseErrorBody } from "./responses.ts";
 * console.log(parseErrorBody("<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>")?.code); // "NoSuchKey"
 * console.log(parseErrorBody("")); // undefined
 * ```
 */
export function parseErrorBody(text: string): S3ErrorBody | undefined {
  if (typeof text !== "string" || text.trim() === "") return undefined;
  let root: XmlElement;
  try {
    root = parseXml(text);
  } catch {
    return undefined;
  }
  return root.name === "Error" ? readError(root) : undefined;
}

/**
 * Reads the `<DeleteResult>` answer to a DeleteObjects request.
 *
 * @example
 * ```ts
 * import { parseDeleteObjectsResult } from "./responses.ts";
 * const result = parseDeleteObjectsResult("<DeleteResult><Deleted><Key>a</Key></Deleted></DeleteResult>");
 * console.log(result.deleted); // ["a"]
 * ```
 */
export function parseDeleteObjectsResult(xml: string): DeleteObjectsResult {
  const what = "DeleteObjects";
  const root = parseRoot(xml, "DeleteResult", what);
  const deleted = childElements(root, "Deleted").map((entry) => {
    const key = childText(entry, "Key");
    if (key === undefined) bad(what, "an entry of <Deleted> has no <Key>");
    return key;
  });
  const errors = childElements(root, "Error").map((entry) => {
    const key = childText(entry, "Key");
    if (key === undefined) bad(what, "an entry of <Error> has no <Key>");
    return { key, code: childText(entry, "Code")?.trim() ?? "", message: childText(entry, "Message") ?? "" };
  });
  return { deleted, errors };
}

/** True when every character of `key` can be written in an XML 1.0 document. */
function isXmlSafe(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code < 0x20 && code !== 0x9 && code !== 0xa && code !== 0xd) return false;
    if (code === 0xfffe || code === 0xffff) return false;
  }
  return key.isWellFormed();
}

/**
 * Builds the XML body of a DeleteObjects request for up to {@linkcode MAX_DELETE_KEYS} keys.
 *
 * @example
 * ```ts
 * import { buildDeleteObjectsBody } from "./responses.ts";
 * console.log(buildDeleteObjectsBody(["a&b"], { quiet: true }));
 * // <Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object></Delete>
 * ```
 */
export function buildDeleteObjectsBody(keys: readonly string[], options: DeleteObjectsBodyOptions): string {
  if (keys.length === 0 || keys.length > MAX_DELETE_KEYS) {
    throw new RangeError(
      `Cannot build a DeleteObjects body: expected 1 to ${MAX_DELETE_KEYS} keys, got ${keys.length}`,
    );
  }
  let body = `<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>${options.quiet}</Quiet>`;
  for (const key of keys) {
    // Such a key would otherwise reach S3 altered (a lone surrogate becomes U+FFFD), deleting the wrong object.
    if (!isXmlSafe(key)) {
      throw new TypeError(
        `Cannot build a DeleteObjects body: key ${JSON.stringify(key)} cannot be sent in XML`,
      );
    }
    body += `<Object><Key>${escapeXml(key)}</Key></Object>`;
  }
  return `${body}</Delete>`;
}

/**
 * Reads the `<CopyObjectResult>` answer to a CopyObject request. S3 may answer a failed copy with status 200
 * and an `<Error>` document; that throws, with the error's code and message.
 *
 * @example
 * ```ts
 * import { parseCopyObjectResult } from "./responses.ts";
 * const result = parseCopyObjectResult('<CopyObjectResult><ETag>"9b2c"</ETag></CopyObjectResult>');
 * console.log(result.etag); // '"9b2c"'
 * ```
 */
export function parseCopyObjectResult(xml: string): { etag: string; lastModified: Date | undefined } {
  const what = "CopyObject";
  const root = parseRoot(xml, "CopyObjectResult", what);
  const etag = childText(root, "ETag");
  if (etag === undefined) bad(what, "<CopyObjectResult> has no <ETag>");
  return { etag, lastModified: parseDate(childText(root, "LastModified")) };
}
