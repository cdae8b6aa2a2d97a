import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { TesseraError } from "../../src/errors.ts";
import {
  buildDeleteObjectsBody,
  MAX_DELETE_KEYS,
  parseCopyObjectResult,
  parseDeleteObjectsResult,
  parseErrorBody,
  parseListObjectsV2,
} from "../../src/s3/responses.ts";
import { childElements, childText, parseXml } from "../../src/s3/xml.ts";

const DECLARATION = `<?xml version="1.0" encoding="UTF-8"?>\n`;
const NS = `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"`;

function assertBadResponse(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof TesseraError, `expected a TesseraError, got ${String(error)}`);
    assert.equal(error.code, "S3_BAD_RESPONSE");
    assert.match(error.message, pattern);
    return true;
  });
}

function listing(body: string): string {
  return `${DECLARATION}<ListBucketResult ${NS}><Name>bucket</Name>${body}</ListBucketResult>`;
}

const ERROR_DOCUMENT =
  `${DECLARATION}<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist` +
  `</Message><BucketName>nope</BucketName><Resource>/nope</Resource><RequestId>4442587FB7D0A2F9</RequestId>` +
  `<HostId>h</HostId></Error>`;

describe("parseListObjectsV2", () => {
  it("parseListObjectsV2() reads a listing as AWS formats it", () => {
    const page = parseListObjectsV2(`${DECLARATION}<ListBucketResult ${NS}>
  <Name>bucket</Name>
  <Prefix>db/</Prefix>
  <KeyCount>4</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>db/manifest</Key>
    <LastModified>2024-05-01T12:34:56.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
    <Size>1234</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>db/empty</Key>
    <LastModified>2024-05-02T00:00:00.000Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag>
    <Size>0</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes><Prefix>db/chunks/</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>db/snapshots/</Prefix></CommonPrefixes>
</ListBucketResult>`);
    assert.deepEqual(page, {
      contents: [
        {
          key: "db/manifest",
          size: 1234,
          etag: `"9b2cf535f27731c974343645a3985328"`,
          lastModified: new Date("2024-05-01T12:34:56.000Z"),
        },
        {
          key: "db/empty",
          size: 0,
          etag: `"d41d8cd98f00b204e9800998ecf8427e"`,
          lastModified: new Date("2024-05-02T00:00:00.000Z"),
        },
      ],
      commonPrefixes: ["db/chunks/", "db/snapshots/"],
      isTruncated: false,
      nextContinuationToken: undefined,
    });
  });

  it("parseListObjectsV2() reads an empty listing", () => {
    const page = parseListObjectsV2(
      listing("<Prefix>none/</Prefix><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>"),
    );
    assert.deepEqual(page, {
      contents: [],
      commonPrefixes: [],
      isTruncated: false,
      nextContinuationToken: undefined,
    });
  });

  it("parseListObjectsV2() returns the continuation token of a truncated page", () => {
    const page = parseListObjectsV2(listing(
      "<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=" +
        '</NextContinuationToken><Contents><Key>a</Key><Size>1</Size><ETag>"x"</ETag></Contents>',
    ));
    assert.equal(page.isTruncated, true);
    assert.equal(page.nextContinuationToken, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    assert.equal(page.contents[0]?.lastModified, undefined);
  });

  it("parseListObjectsV2() rejects a truncated page without a continuation token", () => {
    assertBadResponse(
      () => parseListObjectsV2(listing("<IsTruncated>true</IsTruncated>")),
      /truncated but has no <NextContinuationToken>/,
    );
    assertBadResponse(
      () => parseListObjectsV2(listing("<IsTruncated>yes</IsTruncated>")),
      /<IsTruncated> is "yes"/,
    );
  });

  it("parseListObjectsV2() decodes entities in keys and prefixes", () => {
    const page = parseListObjectsV2(listing(
      "<Contents><Key>a&amp;b &lt;c&gt; &#x1F600;</Key><Size>5</Size><ETag>&quot;e&quot;</ETag></Contents>" +
        "<CommonPrefixes><Prefix>p&apos;q/</Prefix></CommonPrefixes>",
    ));
    assert.equal(page.contents[0]?.key, "a&b <c> \u{1F600}");
    assert.equal(page.contents[0]?.etag, `"e"`);
    assert.deepEqual(page.commonPrefixes, ["p'q/"]);
  });

  it("parseListObjectsV2() decodes keys of a listing requested with encoding-type=url", () => {
    const page = parseListObjectsV2(listing(
      "<EncodingType>url</EncodingType><Contents><Key>a+b%2Fc%26%C3%BC</Key><Size>1</Size></Contents>" +
        "<CommonPrefixes><Prefix>x%20y/</Prefix></CommonPrefixes>",
    ));
    assert.equal(page.contents[0]?.key, "a b/c&ü");
    assert.deepEqual(page.commonPrefixes, ["x y/"]);
    assertBadResponse(
      () =>
        parseListObjectsV2(
          listing("<EncodingType>url</EncodingType><Contents><Key>%E0</Key><Size>1</Size></Contents>"),
        ),
      /"%E0" is not valid URL encoding/,
    );
  });

  it("parseListObjectsV2() rejects a size that is not a non-negative safe integer, naming the key", () => {
    for (const size of ["-1", "1.5", "", "abc", "9007199254740993", "1e3"]) {
      assertBadResponse(
        () => parseListObjectsV2(listing(`<Contents><Key>db/x</Key><Size>${size}</Size></Contents>`)),
        /key "db\/x" has an invalid <Size>/,
      );
    }
    assertBadResponse(
      () => parseListObjectsV2(listing("<Contents><Key>db/x</Key></Contents>")),
      /key "db\/x"/,
    );
    assertBadResponse(
      () => parseListObjectsV2(listing("<Contents><Size>1</Size></Contents>")),
      /has no <Key>/,
    );
  });

  it("parseListObjectsV2() throws on an Error document, an unexpected root, or invalid XML", () => {
    assertBadResponse(
      () => parseListObjectsV2(ERROR_DOCUMENT),
      /NoSuchBucket: The specified bucket does not exist/,
    );
    assertBadResponse(() => parseListObjectsV2("<ListAllMyBucketsResult/>"), /got <ListAllMyBucketsResult>/);
    assertBadResponse(
      () => parseListObjectsV2("<ListBucketResult>"),
      /^Cannot parse ListObjectsV2 response: invalid XML/,
    );
    assertBadResponse(() => parseListObjectsV2(""), /no root element/);
  });
});

describe("parseErrorBody", () => {
  it("parseErrorBody() reads an Error document", () => {
    assert.deepEqual(parseErrorBody(ERROR_DOCUMENT), {
      code: "NoSuchBucket",
      message: "The specified bucket does not exist",
      requestId: "4442587FB7D0A2F9",
      resource: "/nope",
    });
    assert.deepEqual(parseErrorBody("<Error><Code>SlowDown</Code></Error>"), {
      code: "SlowDown",
      message: "",
      requestId: undefined,
      resource: undefined,
    });
  });

  it("parseErrorBody() returns undefined for an empty, non-XML or non-Error body", () => {
    for (
      const text of [
        "",
        "  ",
        "Internal Server Error",
        "<html><body>502</body></html>",
        "<Error>",
        "<Error/>",
      ]
    ) {
      assert.equal(parseErrorBody(text), undefined, text);
    }
    assert.equal(parseErrorBody(listing("")), undefined);
  });

  it("parseErrorBody() never throws for arbitrary strings", () => {
    const text = fc.oneof(
      fc.string({ unit: "binary" }),
      fc.string().map((inner) => `<Error><Code>${inner}</Code></Error>`),
    );
    fc.assert(
      fc.property(text, (input) => {
        const body = parseErrorBody(input);
        return body === undefined || body.code !== "";
      }),
      { numRuns: 2000 },
    );
  });
});

describe("parseDeleteObjectsResult", () => {
  it("parseDeleteObjectsResult() reads both deleted keys and per-key errors", () => {
    const result = parseDeleteObjectsResult(`${DECLARATION}<DeleteResult ${NS}>
  <Deleted><Key>db/chunks/a&amp;b</Key></Deleted>
  <Deleted><Key>db/chunks/c</Key><VersionId>v1</VersionId></Deleted>
  <Error><Key>db/chunks/d</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
</DeleteResult>`);
    assert.deepEqual(result, {
      deleted: ["db/chunks/a&b", "db/chunks/c"],
      errors: [{ key: "db/chunks/d", code: "AccessDenied", message: "Access Denied" }],
    });
  });

  it("parseDeleteObjectsResult() reads the empty answer to a quiet request", () => {
    assert.deepEqual(parseDeleteObjectsResult(`${DECLARATION}<DeleteResult ${NS}></DeleteResult>`), {
      deleted: [],
      errors: [],
    });
  });

  it("parseDeleteObjectsResult() throws on an Error document or an entry without a key", () => {
    assertBadResponse(() => parseDeleteObjectsResult(ERROR_DOCUMENT), /NoSuchBucket/);
    assertBadResponse(
      () => parseDeleteObjectsResult("<DeleteResult><Deleted/></DeleteResult>"),
      /has no <Key>/,
    );
    assertBadResponse(() => parseDeleteObjectsResult("<Delete/>"), /expected a <DeleteResult> document/);
  });
});

describe("buildDeleteObjectsBody", () => {
  it("buildDeleteObjectsBody() writes the Delete document with escaped keys", () => {
    assert.equal(
      buildDeleteObjectsBody(["a", "b&<c>"], { quiet: true }),
      `<Delete ${NS}><Quiet>true</Quiet><Object><Key>a</Key></Object>` +
        `<Object><Key>b&amp;&lt;c&gt;</Key></Object></Delete>`,
    );
    assert.match(buildDeleteObjectsBody(["a"], { quiet: false }), /<Quiet>false<\/Quiet>/);
  });

  it("buildDeleteObjectsBody() output parses back to the same keys, or the keys are refused", () => {
    const unsafe = (key: string) =>
      [...key].some((ch) => {
        const code = ch.codePointAt(0)!;
        return (code < 0x20 && code !== 0x9 && code !== 0xa && code !== 0xd) || code === 0xfffe ||
          code === 0xffff;
      });
    const key = fc.oneof(
      fc.string({ unit: "binary", minLength: 1 }),
      fc.string({ unit: "binary-ascii", minLength: 1 }),
    );
    fc.assert(fc.property(fc.array(key, { minLength: 1, maxLength: 20 }), (keys) => {
      if (keys.some(unsafe)) {
        assert.throws(() => buildDeleteObjectsBody(keys, { quiet: true }), TypeError);
        return;
      }
      const root = parseXml(buildDeleteObjectsBody(keys, { quiet: true }));
      assert.deepEqual(childElements(root, "Object").map((object) => childText(object, "Key")), keys);
    }));
  });

  it("buildDeleteObjectsBody() rejects no keys, too many keys, and keys XML cannot carry", () => {
    assert.throws(() => buildDeleteObjectsBody([], { quiet: true }), RangeError);
    assert.throws(
      () => buildDeleteObjectsBody(new Array<string>(MAX_DELETE_KEYS + 1).fill("k"), { quiet: true }),
      RangeError,
    );
    assert.equal(
      buildDeleteObjectsBody(new Array<string>(MAX_DELETE_KEYS).fill("k"), { quiet: true }).length > 0,
      true,
    );
    assert.throws(
      () => buildDeleteObjectsBody(["a\u0001"], { quiet: true }),
      /key "a\\u0001" cannot be sent in XML/,
    );
    assert.throws(() => buildDeleteObjectsBody(["a\uD800"], { quiet: true }), TypeError);
  });
});

describe("parseCopyObjectResult", () => {
  it("parseCopyObjectResult() reads the ETag and date", () => {
    const result = parseCopyObjectResult(
      `${DECLARATION}<CopyObjectResult ${NS}><LastModified>2024-05-01T12:34:56.000Z</LastModified>` +
        `<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>`,
    );
    assert.deepEqual(result, {
      etag: `"9b2cf535f27731c974343645a3985328"`,
      lastModified: new Date("2024-05-01T12:34:56.000Z"),
    });
  });

  it("parseCopyObjectResult() throws with the code and message of an Error document sent with status 200", () => {
    const body = `${DECLARATION}<Error><Code>InternalError</Code><Message>We encountered an internal error.` +
      ` Please try again.</Message><RequestId>r</RequestId></Error>`;
    assertBadResponse(() => parseCopyObjectResult(body), /InternalError: We encountered an internal error/);
  });

  it("parseCopyObjectResult() rejects a result without an ETag", () => {
    assertBadResponse(() => parseCopyObjectResult("<CopyObjectResult/>"), /has no <ETag>/);
  });
});
