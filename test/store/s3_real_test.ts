/**
 * The store conformance suite against a real S3 endpoint of your choice. Opt-in: it runs only when
 * TESSERA_TEST_S3_BUCKET is set, and then needs credentials with read, write, list and delete rights
 * on the prefix. Everything it writes lives under a fresh prefix and is deleted afterwards.
 *
 *   TESSERA_TEST_S3_BUCKET             bucket to use (required to run)
 *   TESSERA_TEST_S3_PREFIX             parent prefix of the test's own prefix (default "tessera-test/")
 *   TESSERA_TEST_S3_REGION             region (default us-east-1)
 *   TESSERA_TEST_S3_ENDPOINT           custom endpoint URL (default: AWS)
 *   TESSERA_TEST_S3_PATH_STYLE         "1" for path-style addressing
 *   TESSERA_TEST_S3_ACCESS_KEY_ID      credentials (default: none, anonymous)
 *   TESSERA_TEST_S3_SECRET_ACCESS_KEY
 *   TESSERA_TEST_S3_SESSION_TOKEN
 *
 * @module
 */

import { it } from "node:test";
import process from "node:process";
import { S3Store } from "../../src/store/s3.ts";
import { storeConformance } from "./conformance.ts";

const env = process.env;
const bucket = env.TESSERA_TEST_S3_BUCKET;

if (!bucket) {
  it("runs the store conformance suite against a real S3 endpoint", {
    skip: "opt-in: set TESSERA_TEST_S3_BUCKET (and TESSERA_TEST_S3_* credentials) to run it",
  }, () => {});
} else {
  storeConformance(`real S3 (${bucket})`, () => {
    const parent = env.TESSERA_TEST_S3_PREFIX ?? "tessera-test/";
    const prefix = `${parent.replace(/\/?$/, "/")}${Date.now()}-${crypto.randomUUID().slice(0, 8)}/`;
    const accessKeyId = env.TESSERA_TEST_S3_ACCESS_KEY_ID;
    const secretAccessKey = env.TESSERA_TEST_S3_SECRET_ACCESS_KEY;
    const sessionToken = env.TESSERA_TEST_S3_SESSION_TOKEN;
    const store = new S3Store({
      bucket,
      region: env.TESSERA_TEST_S3_REGION,
      endpoint: env.TESSERA_TEST_S3_ENDPOINT,
      forcePathStyle: env.TESSERA_TEST_S3_PATH_STYLE === "1" ? true : undefined,
      credentials: accessKeyId && secretAccessKey
        ? { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) }
        : null,
    }, { prefix });
    return Promise.resolve({
      store,
      writer: store,
      teardown: async () => {
        const keys: string[] = [];
        for await (const entry of store.client.listObjectsV2({ prefix })) {
          if (entry.type === "object") keys.push(entry.key);
        }
        await store.client.deleteObjects(keys);
      },
    });
  });
}
