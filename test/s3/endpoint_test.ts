import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { S3Client } from "../../src/s3/client.ts";
import { bucketUrl, encodeKey, objectUrl, withQuery } from "../../src/s3/endpoint.ts";
import { s3OptionsFromEnv } from "../../src/s3/env.ts";

function assertTypeError(run: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof TypeError, `expected a TypeError, got ${String(error)}`);
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

describe("bucketUrl()", () => {
  it("bucketUrl() addresses an AWS bucket by virtual host in its region", () => {
    assert.equal(
      bucketUrl({ bucket: "photos", region: "eu-west-1" }),
      "https://photos.s3.eu-west-1.amazonaws.com",
    );
  });

  it("bucketUrl() uses us-east-1 when no region is given", () => {
    assert.equal(bucketUrl({ bucket: "photos" }), "https://photos.s3.us-east-1.amazonaws.com");
    assert.equal(bucketUrl({ bucket: "photos", region: "us-east-1" }), bucketUrl({ bucket: "photos" }));
  });

  it("bucketUrl() uses amazonaws.com.cn for cn- regions", () => {
    assert.equal(
      bucketUrl({ bucket: "photos", region: "cn-north-1" }),
      "https://photos.s3.cn-north-1.amazonaws.com.cn",
    );
    assert.equal(
      bucketUrl({ bucket: "photos", region: "cn-northwest-1", forcePathStyle: true }),
      "https://s3.cn-northwest-1.amazonaws.com.cn/photos",
    );
  });

  it("bucketUrl() addresses AWS by path when forcePathStyle is true", () => {
    assert.equal(
      bucketUrl({ bucket: "photos", region: "eu-west-1", forcePathStyle: true }),
      "https://s3.eu-west-1.amazonaws.com/photos",
    );
  });

  it("bucketUrl() uses path style for a custom endpoint by default, with or without a trailing slash", () => {
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "http://127.0.0.1:9000" }),
      "http://127.0.0.1:9000/photos",
    );
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "http://127.0.0.1:9000/" }),
      "http://127.0.0.1:9000/photos",
    );
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "https://minio.example.com", region: "eu-central-1" }),
      "https://minio.example.com/photos",
    );
  });

  it("bucketUrl() uses a virtual host on a custom endpoint when forcePathStyle is false", () => {
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "https://storage.example.com", forcePathStyle: false }),
      "https://photos.storage.example.com",
    );
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "http://minio.local:9000", forcePathStyle: false }),
      "http://photos.minio.local:9000",
    );
  });

  it("bucketUrl() falls back to path style for a bucket with dots over https, whose host would not match the certificate", () => {
    assert.equal(
      bucketUrl({ bucket: "my.photos", region: "eu-west-1" }),
      "https://s3.eu-west-1.amazonaws.com/my.photos",
    );
    assert.equal(
      bucketUrl({ bucket: "my.photos", endpoint: "https://storage.example.com", forcePathStyle: false }),
      "https://storage.example.com/my.photos",
    );
  });

  it("bucketUrl() keeps a bucket with dots as a virtual host over plain http", () => {
    assert.equal(
      bucketUrl({ bucket: "my.photos", endpoint: "http://minio.local:9000", forcePathStyle: false }),
      "http://my.photos.minio.local:9000",
    );
  });

  it("bucketUrl() falls back to path style for bucket names that cannot be a host label", () => {
    for (const bucket of ["Photos", "my_photos", "ab", "-photos", "photos-", "a..b", "192.168.1.1"]) {
      assert.equal(
        bucketUrl({ bucket, endpoint: "http://minio.local:9000", forcePathStyle: false }),
        `http://minio.local:9000/${bucket}`,
        bucket,
      );
    }
  });

  it("bucketUrl() keeps the base path of an endpoint, in both addressing styles", () => {
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "https://gateway.example.com/s3" }),
      "https://gateway.example.com/s3/photos",
    );
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "https://gateway.example.com/s3/" }),
      "https://gateway.example.com/s3/photos",
    );
    assert.equal(
      bucketUrl({ bucket: "photos", endpoint: "https://gateway.example.com/s3/", forcePathStyle: false }),
      "https://photos.gateway.example.com/s3",
    );
  });

  it("bucketUrl() rejects an endpoint that is not a URL with a TypeError naming it", () => {
    assertTypeError(
      () => bucketUrl({ bucket: "photos", endpoint: "127.0.0.1 port 9000" }),
      /Cannot use S3 endpoint "127\.0\.0\.1 port 9000"/,
      /expected a URL/,
    );
  });

  it("bucketUrl() rejects an endpoint that is not http or https", () => {
    assertTypeError(
      () => bucketUrl({ bucket: "photos", endpoint: "ftp://files.example.com" }),
      /"ftp:\/\/files\.example\.com"/,
      /only http and https/,
    );
  });

  it("bucketUrl() rejects an endpoint with a query, fragment or user name, naming only its origin", () => {
    for (const endpoint of ["http://host:9000/?a=1", "http://host:9000/#top", "http://user:pw@host:9000"]) {
      assertTypeError(
        () => bucketUrl({ bucket: "photos", endpoint }),
        /"http:\/\/host:9000"/,
        /remove the query/,
      );
    }
    assert.throws(
      () => bucketUrl({ bucket: "photos", endpoint: "http://user:hunter2@host:9000" }),
      (error: unknown) => error instanceof TypeError && !error.message.includes("hunter2"),
    );
  });

  it("bucketUrl() rejects a bucket name S3 cannot have with a TypeError naming it", () => {
    for (const bucket of ["", "a/b", "with space", "x".repeat(256), "ünï"]) {
      assertTypeError(() => bucketUrl({ bucket }), new RegExp(`Cannot use bucket "${bucket}"`));
    }
  });

  it("bucketUrl() rejects a malformed region with a TypeError naming it", () => {
    for (const region of ["EU West", "eu-west-1/x", "", "us_east_1"]) {
      assertTypeError(
        () => bucketUrl({ bucket: "photos", region }),
        new RegExp(`Cannot use region "${region}"`),
      );
    }
  });
});

describe("encodeKey()", () => {
  it("encodeKey() percent-encodes spaces, '+', non-ASCII and '!' and keeps '/'", () => {
    assert.equal(encodeKey("a b+c/é!"), "a%20b%2Bc/%C3%A9%21");
  });

  it("encodeKey() encodes the characters encodeURIComponent leaves alone: ! ' ( ) *", () => {
    assert.equal(encodeKey("!'()*"), "%21%27%28%29%2A");
  });

  it("encodeKey() leaves RFC 3986 unreserved characters as they are", () => {
    const unreserved = "ABCXYZabcxyz0189-._~";
    assert.equal(encodeKey(unreserved), unreserved);
  });

  it("encodeKey() encodes '%', reserved characters and characters outside the BMP as UTF-8 bytes", () => {
    assert.equal(encodeKey("100%"), "100%25");
    assert.equal(encodeKey("a=b&c?d#e;f:g@h,i$j"), "a%3Db%26c%3Fd%23e%3Bf%3Ag%40h%2Ci%24j");
    assert.equal(encodeKey("日本/😀"), "%E6%97%A5%E6%9C%AC/%F0%9F%98%80");
  });

  it("encodeKey() uses upper-case hex digits, as SigV4 requires", () => {
    assert.equal(encodeKey("\u00ff\n"), "%C3%BF%0A");
  });

  it("encodeKey() keeps empty segments, so leading, trailing and doubled slashes survive", () => {
    assert.equal(encodeKey("/a//b/"), "/a//b/");
  });

  it("encodeKey() output holds only unreserved characters, '/' and escapes, and decodes back to the key", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (key) => {
        const encoded = encodeKey(key);
        assert.match(encoded, /^(?:[A-Za-z0-9\-._~/]|%[0-9A-F]{2})*$/);
        assert.equal(encoded.split("/").map(decodeURIComponent).join("/"), key);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("objectUrl() and withQuery()", () => {
  it("objectUrl() appends the encoded key to the bucket URL", () => {
    assert.equal(objectUrl("http://127.0.0.1:9000/b", "dir/a b+c"), "http://127.0.0.1:9000/b/dir/a%20b%2Bc");
    assert.equal(
      objectUrl("https://b.s3.amazonaws.com", "k", { partNumber: "2" }),
      "https://b.s3.amazonaws.com/k?partNumber=2",
    );
  });

  it("withQuery() sorts parameters by name and RFC 3986-encodes names and values", () => {
    assert.equal(
      withQuery("http://h/b", { prefix: "a b/", "list-type": "2", "continuation-token": "x+/=!" }),
      "http://h/b?continuation-token=x%2B%2F%3D%21&list-type=2&prefix=a%20b%2F",
    );
  });

  it("withQuery() writes a parameter with an empty value as its bare name", () => {
    assert.equal(withQuery("http://h/b", { delete: "" }), "http://h/b?delete");
    assert.equal(withQuery("http://h/b", { uploads: "", prefix: "p" }), "http://h/b?prefix=p&uploads");
  });

  it("withQuery() leaves the URL alone when there are no parameters", () => {
    assert.equal(withQuery("http://h/b"), "http://h/b");
    assert.equal(withQuery("http://h/b", {}), "http://h/b");
  });

  it("withQuery() output parses back to the same parameters", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1 }), fc.string({ unit: "binary" })), (query) => {
        const url = new URL(withQuery("http://h/b", query));
        for (const [name, value] of Object.entries(query)) {
          assert.equal(url.searchParams.get(name), value);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("s3OptionsFromEnv()", () => {
  const KEYS = {
    AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
    AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  };

  it("s3OptionsFromEnv() reads the key pair and the session token", () => {
    const options = s3OptionsFromEnv({ ...KEYS, AWS_SESSION_TOKEN: "token-1" }, { bucket: "b" });
    assert.deepEqual(options.credentials, {
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      sessionToken: "token-1",
    });
    assert.equal(options.bucket, "b");
  });

  it("s3OptionsFromEnv() leaves the session token out when it is unset", () => {
    const options = s3OptionsFromEnv(KEYS, { bucket: "b" });
    assert.deepEqual(options.credentials, {
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: KEYS.AWS_SECRET_ACCESS_KEY,
    });
  });

  it("s3OptionsFromEnv() without an access key gives null credentials, an anonymous client", () => {
    assert.equal(s3OptionsFromEnv({}, { bucket: "b" }).credentials, null);
    assert.equal(
      s3OptionsFromEnv({ AWS_ACCESS_KEY_ID: " ", AWS_SECRET_ACCESS_KEY: "" }, { bucket: "b" }).credentials,
      null,
    );
  });

  it("s3OptionsFromEnv() with only one of the key id and the secret throws a TypeError naming the missing one", () => {
    assertTypeError(
      () => s3OptionsFromEnv({ AWS_ACCESS_KEY_ID: "AKIDEXAMPLE" }, { bucket: "b" }),
      /AWS_SECRET_ACCESS_KEY is not/,
    );
    assert.throws(
      () => s3OptionsFromEnv({ AWS_SECRET_ACCESS_KEY: "only-the-secret" }, { bucket: "b" }),
      (error: unknown) =>
        error instanceof TypeError && /AWS_ACCESS_KEY_ID is not/.test(error.message) &&
        !error.message.includes("only-the-secret"),
    );
  });

  it("s3OptionsFromEnv() does not mind a lone key id when the caller passes credentials itself", () => {
    const options = s3OptionsFromEnv({ AWS_ACCESS_KEY_ID: "AKIDEXAMPLE" }, {
      bucket: "b",
      credentials: null,
    });
    assert.equal(options.credentials, null);
  });

  it("s3OptionsFromEnv() prefers AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL", () => {
    const env = { AWS_ENDPOINT_URL: "http://general:1", AWS_ENDPOINT_URL_S3: "http://s3-only:2" };
    assert.equal(s3OptionsFromEnv(env, { bucket: "b" }).endpoint, "http://s3-only:2");
    assert.equal(
      s3OptionsFromEnv({ AWS_ENDPOINT_URL: "http://general:1" }, { bucket: "b" }).endpoint,
      "http://general:1",
    );
    assert.equal(s3OptionsFromEnv({}, { bucket: "b" }).endpoint, undefined);
  });

  it("s3OptionsFromEnv() prefers AWS_REGION over AWS_DEFAULT_REGION", () => {
    const env = { AWS_REGION: "eu-west-1", AWS_DEFAULT_REGION: "us-west-2" };
    assert.equal(s3OptionsFromEnv(env, { bucket: "b" }).region, "eu-west-1");
    assert.equal(s3OptionsFromEnv({ AWS_DEFAULT_REGION: "us-west-2" }, { bucket: "b" }).region, "us-west-2");
    assert.equal(s3OptionsFromEnv({}, { bucket: "b" }).region, undefined);
  });

  it("s3OptionsFromEnv() lets explicit options win over the environment, but not undefined ones", () => {
    const env = { ...KEYS, AWS_REGION: "eu-west-1", AWS_ENDPOINT_URL: "http://from-env:1" };
    const credentials = { accessKeyId: "EXPLICIT", secretAccessKey: "explicit-secret" };
    const options = s3OptionsFromEnv(env, {
      bucket: "b",
      region: "ap-south-1",
      endpoint: "http://explicit:2",
      credentials,
      maxAttempts: 2,
    });
    assert.equal(options.region, "ap-south-1");
    assert.equal(options.endpoint, "http://explicit:2");
    assert.deepEqual(options.credentials, credentials);
    assert.equal(options.maxAttempts, 2);
    const kept = s3OptionsFromEnv(env, { bucket: "b", region: undefined, endpoint: undefined });
    assert.equal(kept.region, "eu-west-1");
    assert.equal(kept.endpoint, "http://from-env:1");
  });

  it("s3OptionsFromEnv() output builds a client addressing the configured endpoint and region", () => {
    const client = new S3Client(
      s3OptionsFromEnv({ ...KEYS, AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9000", AWS_REGION: "eu-west-1" }, {
        bucket: "backups",
      }),
    );
    assert.equal(client.url, "http://127.0.0.1:9000/backups");
    assert.equal(client.region, "eu-west-1");
    assert.equal(client.bucket, "backups");
  });
});

describe("new S3Client()", () => {
  it("new S3Client() rejects a bad bucket, endpoint or retry option before any request", () => {
    assertTypeError(() => new S3Client({ bucket: "a/b" }), /Cannot use bucket "a\/b"/);
    assertTypeError(() => new S3Client({ bucket: "b", endpoint: "nope" }), /Cannot use S3 endpoint "nope"/);
    assert.throws(() => new S3Client({ bucket: "b", maxAttempts: 0 }), RangeError);
    assert.throws(() => new S3Client({ bucket: "b", timeoutMs: -1 }), RangeError);
  });

  it("new S3Client() defaults to us-east-1 on AWS", () => {
    const client = new S3Client({ bucket: "backups" });
    assert.equal(client.region, "us-east-1");
    assert.equal(client.url, "https://backups.s3.us-east-1.amazonaws.com");
  });
});
