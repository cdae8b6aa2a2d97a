import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { TesseraError } from "../../src/errors.ts";
import { childElement, childElements, childText, escapeXml, parseXml } from "../../src/s3/xml.ts";

function assertBadXml(input: string, pattern: RegExp): void {
  assert.throws(() => parseXml(input), (error: unknown) => {
    assert.ok(error instanceof TesseraError, `expected a TesseraError, got ${String(error)}`);
    assert.equal(error.code, "S3_BAD_RESPONSE");
    assert.match(error.message, /^Cannot parse XML: .* at offset \d+$/);
    assert.match(error.message, pattern);
    return true;
  });
}

// Characters XML 1.0 cannot carry at all, even escaped; tab, LF and CR are allowed.
function isXmlSafe(text: string): boolean {
  return ![...text].some((ch) => {
    const code = ch.codePointAt(0)!;
    return (code < 0x20 && code !== 0x9 && code !== 0xa && code !== 0xd) || code === 0xfffe ||
      code === 0xffff;
  });
}

describe("parseXml", () => {
  it("parseXml() reads elements, attributes, text and children", () => {
    const root = parseXml(
      `<?xml version="1.0" encoding="UTF-8"?>\n<a xmlns="urn:x" b='1' c = "two"><d>x</d>y<d/><e:f>z</e:f></a>`,
    );
    assert.equal(root.name, "a");
    assert.deepEqual(root.attributes, { xmlns: "urn:x", b: "1", c: "two" });
    assert.equal(root.text, "y");
    assert.deepEqual(root.children.map((child) => child.name), ["d", "d", "e:f"]);
    assert.equal(childText(root, "d"), "x");
    assert.equal(childElements(root, "d")[1]?.text, "");
    assert.equal(childText(root, "e:f"), "z");
    assert.equal(childElement(root, "missing"), undefined);
    assert.equal(childText(root, "missing"), undefined);
  });

  it("parseXml() skips a BOM, comments, processing instructions and a DOCTYPE", () => {
    const root = parseXml(
      `\uFEFF<?xml version="1.0"?><!-- c1 --><!DOCTYPE r [<!ENTITY e "x>y"> <!-- ] > -->]>` +
        `<?pi data?><r><!-- <x> -->a<?pi2 ?>b</r><!-- tail -->\n`,
    );
    assert.equal(root.name, "r");
    assert.equal(root.text, "ab");
    assert.deepEqual(root.children, []);
  });

  it("parseXml() decodes predefined entities and character references", () => {
    const root = parseXml(`<k a="&quot;&apos;&#x41;">&amp;&lt;&gt;&quot;&apos;&#65;&#x1F600;&#0000042;</k>`);
    assert.equal(root.text, `&<>"'A\u{1F600}*`);
    assert.equal(root.attributes.a, `"'A`);
  });

  it("parseXml() keeps CDATA content verbatim", () => {
    const root = parseXml("<k>a<![CDATA[<b>&amp;]]]]>c</k>");
    assert.equal(root.text, "a<b>&amp;]]c");
  });

  it("parseXml() folds CR LF and lone CR into LF, but keeps a CR written as a reference", () => {
    assert.equal(parseXml("<k>a\r\nb\rc&#13;</k>").text, "a\nb\nc\r");
  });

  it("parseXml() stores an attribute named __proto__ as an ordinary attribute", () => {
    const root = parseXml(`<k __proto__="x"/>`);
    assert.equal(Object.getPrototypeOf(root.attributes), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(root.attributes, "__proto__")?.value, "x");
  });

  it("parseXml() rejects malformed documents with the offset of the fault", () => {
    assertBadXml("", /no root element at offset 0/);
    assertBadXml("  \n ", /no root element/);
    assertBadXml("<a>", /unclosed element <a> at offset 3/);
    assertBadXml("<a><b></a>", /closing tag <\/a> does not match <b> at offset 6/);
    assertBadXml("<a></a><b/>", /content after the root element at offset 7/);
    assertBadXml("<a/>text", /content after the root element/);
    assertBadXml("text<a/>", /text before the root element at offset 0/);
    assertBadXml("<a>&foo;</a>", /unknown entity "&foo;" at offset 3/);
    assertBadXml("<a>& b</a>", /unterminated entity reference/);
    assertBadXml("<a>&#0;</a>", /invalid code point/);
    assertBadXml("<a>&#xD800;</a>", /invalid code point/);
    assertBadXml("<a>&#x110000;</a>", /invalid code point/);
    assertBadXml("<a>&#1;</a>", /invalid code point/);
    assertBadXml("<a>&#X41;</a>", /unknown entity "&#X41;"/);
    assertBadXml("<a>&#99999999999999999999;</a>", /invalid code point/);
    assertBadXml("<a>< b</a>", /expected an element name/);
    assertBadXml("<a>1 < 2</a>", /expected an element name/);
    assertBadXml("<a b=1/>", /expected a quoted value/);
    assertBadXml(`<a b="1"c="2"/>`, /expected whitespace before an attribute/);
    assertBadXml(`<a b="1" b="2"/>`, /duplicate attribute "b"/);
    assertBadXml(`<a b="<"/>`, /"<" in the value of attribute "b"/);
    assertBadXml(`<a b="1`, /unterminated value of attribute "b"/);
    assertBadXml("<a><!-- x</a>", /unterminated comment/);
    assertBadXml("<a><![CDATA[x</a>", /unterminated CDATA section/);
    assertBadXml("<![CDATA[x]]><a/>", /text before the root element|CDATA/);
    assertBadXml("</a>", /without an open element/);
    assertBadXml("<a></a >x", /content after the root element/);
    assertBadXml("<!DOCTYPE a [", /unterminated DOCTYPE/);
    assertBadXml("<a/><!DOCTYPE a>", /content after the root element/);
  });

  it("parseXml() rejects nesting deeper than the limit without overflowing the stack", () => {
    const ok = "<a>".repeat(64) + "</a>".repeat(64);
    assert.equal(parseXml(ok).name, "a");
    assertBadXml("<a>".repeat(65) + "</a>".repeat(65), /nested deeper than 64 levels at offset 192/);
    assertBadXml("<a>".repeat(200_000), /nested deeper than 64 levels/);
    assert.equal(parseXml("<a><a><a/></a></a>", { maxDepth: 3 }).name, "a");
    assert.throws(
      () => parseXml("<a><a><a/></a></a>", { maxDepth: 2 }),
      /nested deeper than 2 levels at offset 6/,
    );
    assert.throws(() => parseXml("<a/>", { maxDepth: 0 }), RangeError);
  });

  it("parseXml() parses a large document with many entities", () => {
    const count = 200_000;
    const root = parseXml(`<r>${"<k>a&amp;b</k>".repeat(count)}</r>`);
    assert.equal(root.children.length, count);
    assert.equal(root.children[count - 1]?.text, "a&b");
    assert.equal(parseXml(`<r>${"&lt;".repeat(count)}</r>`).text.length, count);
  });

  it("parseXml() returns or throws S3_BAD_RESPONSE for arbitrary strings", () => {
    const check = (input: string) => {
      try {
        parseXml(input);
      } catch (error) {
        assert.ok(error instanceof TesseraError, `threw ${String(error)} for ${JSON.stringify(input)}`);
        assert.equal(error.code, "S3_BAD_RESPONSE");
      }
    };
    fc.assert(fc.property(fc.string({ unit: "binary" }), check), { numRuns: 2000 });
    const token = fc.constantFrom(
      "<",
      ">",
      "/>",
      "</",
      "<a>",
      "</a>",
      "<b x='1'>",
      "</b>",
      "<a/>",
      "&amp;",
      "&",
      "&#",
      "&#x41;",
      ";",
      "<!--",
      "-->",
      "<![CDATA[",
      "]]>",
      "<?",
      "?>",
      "<!DOCTYPE",
      "[",
      "]",
      '"',
      "'",
      "=",
      " ",
      "x",
      "\uFEFF",
    );
    fc.assert(fc.property(fc.array(token, { maxLength: 40 }).map((parts) => parts.join("")), check), {
      numRuns: 5000,
    });
  });
});

describe("escapeXml", () => {
  it("escapeXml() escapes the five special characters and CR", () => {
    assert.equal(escapeXml(`a&b<c>d"e'f\rg`), "a&amp;b&lt;c&gt;d&quot;e&apos;f&#13;g");
    assert.equal(escapeXml("plain ü 😀"), "plain ü 😀");
  });

  it("escapeXml() output embedded in a document parses back to the original text", () => {
    const text = fc.string({ unit: "binary" }).filter(isXmlSafe);
    fc.assert(
      fc.property(text, (original) => {
        const root = parseXml(
          `<k a="${escapeXml(original)}" b='${escapeXml(original)}'>${escapeXml(original)}</k>`,
        );
        assert.equal(root.text, original);
        assert.equal(root.attributes.a, original);
        assert.equal(root.attributes.b, original);
      }),
      { numRuns: 1000 },
    );
  });
});
