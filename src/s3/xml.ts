/**
 * A small, non-validating XML parser for S3 response bodies, and escaping for request bodies.
 *
 * It runs in time linear in the input, uses an explicit stack instead of recursion, and reports every
 * malformed input as a `TesseraError` with code `S3_BAD_RESPONSE`, so a misbehaving server can never crash
 * or stall a caller. It does not read DTDs (so only the predefined entities exist) and leaves whitespace in
 * attribute values as written; neither matters for S3.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";

/** One element of a parsed document. */
export interface XmlElement {
  /** The tag name as written, prefix included. */
  name: string;
  /** Attribute values, decoded; `xmlns` declarations are kept here like any other attribute. */
  attributes: Record<string, string>;
  /** Child elements in document order. */
  children: XmlElement[];
  /** The decoded character data directly inside this element, CDATA included, descendants excluded. */
  text: string;
}

/** Options for {@linkcode parseXml}. */
export interface ParseXmlOptions {
  /** The deepest nesting of elements accepted, the root counting as 1. @default {64} */
  maxDepth?: number;
}

const WHITESPACE = /[ \t\r\n]*/y;
const PREDEFINED: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
// Entity references longer than this are malformed; the bound keeps a lone "&" from scanning the whole input.
const MAX_ENTITY_LENGTH = 32;

function fail(what: string, offset: number): never {
  throw new TesseraError("S3_BAD_RESPONSE", `Cannot parse XML: ${what} at offset ${offset}`);
}

/** Shortens document text quoted in a message, so that a garbage response cannot make a huge one. */
function show(name: string): string {
  return name.length > 40 ? `${name.slice(0, 40)}...` : name;
}

/** A permissive reading of the XML Name production, enough to tell names from syntax. */
function isNameChar(code: number, first: boolean): boolean {
  if ((code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || code === 0x5f || code === 0x3a) {
    return true;
  }
  if (code >= 0xc0) return true;
  return !first && ((code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2e || code === 0xb7);
}

function isXmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
}

function decodeReference(name: string, offset: number): string {
  const predefined = Object.hasOwn(PREDEFINED, name) ? PREDEFINED[name] : undefined;
  if (predefined !== undefined) return predefined;
  const digits = /^#x[0-9A-Fa-f]+$/.test(name) ? name.slice(2) : /^#[0-9]+$/.test(name) ? name.slice(1) : "";
  if (digits === "") fail(`unknown entity "&${name};"`, offset);
  const code = parseInt(digits, name[1] === "x" ? 16 : 10);
  if (!isXmlChar(code)) fail(`character reference "&${name};" names an invalid code point`, offset);
  return String.fromCodePoint(code);
}

/** Decodes references and normalises line ends in `raw`, which starts at `offset` in the document. */
function decodeText(raw: string, offset: number): string {
  const text = raw.includes("\r") ? raw.replace(/\r\n?/g, "\n") : raw;
  if (!text.includes("&")) return text;
  // Offsets in messages stay exact only when no CR was folded before the reference; close enough to find it.
  let out = "";
  let at = 0;
  for (let amp = text.indexOf("&"); amp !== -1; amp = text.indexOf("&", at)) {
    const semi = text.indexOf(";", amp + 1);
    if (semi === -1 || semi - amp > MAX_ENTITY_LENGTH) fail("unterminated entity reference", offset + amp);
    out += text.slice(at, amp) + decodeReference(text.slice(amp + 1, semi), offset + amp);
    at = semi + 1;
  }
  return out + text.slice(at);
}

class Cursor {
  pos = 0;
  constructor(readonly src: string) {}

  skipWhitespace(): boolean {
    const code = this.src.charCodeAt(this.pos);
    if (code !== 0x20 && code !== 0x0a && code !== 0x09 && code !== 0x0d) return false;
    WHITESPACE.lastIndex = this.pos;
    WHITESPACE.test(this.src);
    const moved = WHITESPACE.lastIndex > this.pos;
    this.pos = WHITESPACE.lastIndex;
    return moved;
  }

  name(what: string): string {
    const start = this.pos;
    let end = start;
    while (end < this.src.length && isNameChar(this.src.charCodeAt(end), end === start)) end++;
    if (end === start) fail(`expected ${what}`, start);
    this.pos = end;
    return this.src.slice(start, end);
  }

  /** Moves past the next `terminator`, returning the text skipped. */
  until(terminator: string, what: string): string {
    const end = this.src.indexOf(terminator, this.pos);
    if (end === -1) fail(`unterminated ${what}`, this.pos);
    const skipped = this.src.slice(this.pos, end);
    this.pos = end + terminator.length;
    return skipped;
  }

  startsWith(prefix: string): boolean {
    return this.src.startsWith(prefix, this.pos);
  }
}

/** Skips a comment, a processing instruction or a DOCTYPE at the cursor; false when none starts there. */
function skipMisc(c: Cursor, allowDoctype: boolean): boolean {
  const start = c.pos;
  if (c.startsWith("<!--")) {
    c.pos += 4;
    c.until("-->", `comment starting at offset ${start}`);
  } else if (c.startsWith("<?")) {
    c.pos += 2;
    c.name("a processing instruction target");
    c.until("?>", `processing instruction starting at offset ${start}`);
  } else if (allowDoctype && c.startsWith("<!DOCTYPE")) {
    skipDoctype(c);
  } else {
    return false;
  }
  return true;
}

function skipDoctype(c: Cursor): void {
  const start = c.pos;
  let depth = 0;
  for (c.pos += 9; c.pos < c.src.length; c.pos++) {
    const ch = c.src[c.pos];
    if (ch === '"' || ch === "'") {
      c.pos++;
      c.until(ch, `quoted string in the DOCTYPE starting at offset ${start}`);
      c.pos--;
    } else if (ch === "<" && c.startsWith("<!--")) {
      c.pos += 4;
      c.until("-->", `comment in the DOCTYPE starting at offset ${start}`);
      c.pos--;
    } else if (ch === "[") {
      depth++;
    } else if (ch === "]") {
      depth--;
    } else if (ch === ">" && depth <= 0) {
      c.pos++;
      return;
    }
  }
  fail("unterminated DOCTYPE", start);
}

function readAttributes(c: Cursor, element: XmlElement): void {
  while (true) {
    const spaced = c.skipWhitespace();
    const ch = c.src[c.pos];
    if (ch === ">" || ch === "/" || ch === undefined) return;
    if (!spaced) fail(`expected whitespace before an attribute of <${show(element.name)}>`, c.pos);
    const nameAt = c.pos;
    const name = c.name(`an attribute name in <${show(element.name)}>`);
    c.skipWhitespace();
    if (c.src[c.pos] !== "=") fail(`expected "=" after attribute "${show(name)}"`, c.pos);
    c.pos++;
    c.skipWhitespace();
    const quote = c.src[c.pos];
    if (quote !== '"' && quote !== "'") fail(`expected a quoted value for attribute "${show(name)}"`, c.pos);
    const valueAt = ++c.pos;
    const raw = c.until(quote, `value of attribute "${show(name)}"`);
    if (raw.includes("<")) fail(`"<" in the value of attribute "${show(name)}"`, valueAt + raw.indexOf("<"));
    if (Object.hasOwn(element.attributes, name)) fail(`duplicate attribute "${show(name)}"`, nameAt);
    // defineProperty, so that an attribute named "__proto__" is stored rather than swallowed.
    Object.defineProperty(element.attributes, name, {
      value: decodeText(raw, valueAt),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
}

/**
 * Parses a whole XML document and returns its root element.
 *
 * @example Reading a key from a listing
 * ```ts
 * import { childText, parseXml } from "./xml.ts";
 * const root = parseXml("<ListBucketResult><Contents><Key>a&amp;b</Key></Contents></ListBucketResult>");
 * console.log(childText(root.children[0]!, "Key")); // "a&b"
 * ```
 */
export function parseXml(text: string, options: ParseXmlOptions = {}): XmlElement {
  if (typeof text !== "string") throw new TypeError("Cannot parse XML: expected a string");
  const maxDepth = options.maxDepth ?? 64;
  if (!Number.isInteger(maxDepth) || maxDepth < 1) {
    throw new RangeError(`Cannot parse XML: "maxDepth" must be an integer >= 1, got ${maxDepth}`);
  }
  const c = new Cursor(text);
  if (c.startsWith("\uFEFF")) c.pos = 1;
  do c.skipWhitespace(); while (skipMisc(c, true));
  if (c.pos >= text.length) fail("the document has no root element", c.pos);
  if (text[c.pos] !== "<") fail("text before the root element", c.pos);

  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (root === undefined) {
    const parent = stack[stack.length - 1];
    const lt = text.indexOf("<", c.pos);
    if (lt === -1) fail(`unclosed element <${show(parent?.name ?? "")}>`, text.length);
    if (parent !== undefined && lt > c.pos) parent.text += decodeText(text.slice(c.pos, lt), c.pos);
    c.pos = lt;
    const next = text.charCodeAt(lt + 1);
    // "!" and "?" open the rare constructs; testing one character keeps the common tags fast.
    if ((next === 0x21 || next === 0x3f) && skipMisc(c, false)) continue;
    if (next === 0x21 && c.startsWith("<![CDATA[")) {
      if (parent === undefined) fail("CDATA section outside the root element", lt);
      c.pos += 9;
      parent.text += c.until("]]>", `CDATA section starting at offset ${lt}`).replace(/\r\n?/g, "\n");
    } else if (next === 0x2f) {
      c.pos += 2;
      const name = c.name('an element name after "</"');
      c.skipWhitespace();
      if (text[c.pos] !== ">") fail(`expected ">" to end </${show(name)}>`, c.pos);
      c.pos++;
      const open = stack.pop();
      if (open === undefined) fail(`closing tag </${show(name)}> without an open element`, lt);
      if (open.name !== name) fail(`closing tag </${show(name)}> does not match <${show(open.name)}>`, lt);
      if (stack.length === 0) root = open;
    } else {
      c.pos++;
      const element: XmlElement = {
        name: c.name('an element name after "<"'),
        attributes: {},
        children: [],
        text: "",
      };
      readAttributes(c, element);
      if (stack.length >= maxDepth) fail(`elements nested deeper than ${maxDepth} levels`, lt);
      parent?.children.push(element);
      if (c.startsWith("/>")) {
        c.pos += 2;
        if (parent === undefined) root = element;
      } else if (c.startsWith(">")) {
        c.pos++;
        stack.push(element);
      } else {
        fail(`expected ">" to end <${show(element.name)}>`, c.pos);
      }
    }
  }

  do c.skipWhitespace(); while (skipMisc(c, false));
  if (c.pos < text.length) fail("content after the root element", c.pos);
  return root;
}

/** The first child of `el` named `name`, or undefined. */
export function childElement(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((child) => child.name === name);
}

/** Every child of `el` named `name`, in document order. */
export function childElements(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((child) => child.name === name);
}

/** The text of the first child of `el` named `name`, or undefined when there is no such child. */
export function childText(el: XmlElement, name: string): string | undefined {
  return childElement(el, name)?.text;
}

const ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
  // A parser folds a literal CR into LF, so only a reference carries it through.
  "\r": "&#13;",
};

/**
 * Escapes `text` for use as element content or as a quoted attribute value.
 *
 * @example
 * ```ts
 * import { escapeXml } from "./xml.ts";
 * console.log(escapeXml(`a<b & "c"`)); // "a&lt;b &amp; &quot;c&quot;"
 * ```
 */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"'\r]/g, (ch) => ESCAPES[ch] ?? ch);
}
