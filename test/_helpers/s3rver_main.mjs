// Runs s3rver for the test suite: `node --openssl-legacy-provider s3rver_main.mjs --directory DIR --bucket B...`.
// Prints one JSON line, {"port": N}, once it listens on 127.0.0.1. Started by s3_server.ts.
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import S3rver from "s3rver";

const { values } = parseArgs({
  options: {
    directory: { type: "string" },
    bucket: { type: "string", multiple: true, default: [] },
    cors: { type: "boolean", default: false },
  },
});
if (values.directory === undefined) {
  console.error("s3rver_main.mjs: --directory is required");
  process.exit(2);
}

// Normally stop() in s3_server.ts removes the directory; this covers a test process that ended or died
// without calling it (_exit_with_parent.cjs turns both into process.exit()).
process.on("exit", () => rmSync(values.directory, { recursive: true, force: true }));

// With --cors, pages of any origin may read and write the buckets, as a browser replica needs.
const CORS = `<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>*</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>*</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <ExposeHeader>Content-Range</ExposeHeader>
    <ExposeHeader>Content-Length</ExposeHeader>
    <ExposeHeader>Last-Modified</ExposeHeader>
    <MaxAgeSeconds>600</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>`;

const server = new S3rver({
  port: 0,
  address: "127.0.0.1",
  directory: values.directory,
  silent: true,
  configureBuckets: values.bucket.map((name) => ({ name, configs: values.cors ? [CORS] : [] })),
});

try {
  const address = await server.run();
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
} catch (error) {
  console.error(`s3rver_main.mjs: cannot start s3rver: ${error?.stack ?? error}`);
  process.exit(1);
}
