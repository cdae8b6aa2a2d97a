/**
 * S3 settings from the environment variables the AWS tools share.
 *
 * @module
 */

import type { S3ClientOptions } from "./client.ts";

/**
 * Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
 * `AWS_DEFAULT_REGION`) and `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`). Without an access key the client
 * is anonymous, which public buckets allow. Fields in `options` win over the environment.
 *
 * @example
 * ```ts
 * import { s3OptionsFromEnv } from "./env.ts";
 * const options = s3OptionsFromEnv({ AWS_REGION: "eu-west-1" }, { bucket: "backups" });
 * console.log(options.region, options.credentials); // eu-west-1 null
 * ```
 */
export function s3OptionsFromEnv(
  env: Record<string, string | undefined>,
  options: Partial<S3ClientOptions> & { bucket: string },
): S3ClientOptions {
  const value = (name: string) => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const accessKeyId = value("AWS_ACCESS_KEY_ID");
  const secretAccessKey = value("AWS_SECRET_ACCESS_KEY");
  if (Boolean(accessKeyId) !== Boolean(secretAccessKey) && options.credentials === undefined) {
    throw new TypeError(
      accessKeyId
        ? "Cannot configure S3 credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
        : "Cannot configure S3 credentials: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
    );
  }
  const sessionToken = value("AWS_SESSION_TOKEN");
  const fromEnv: S3ClientOptions = {
    bucket: options.bucket,
    credentials: accessKeyId && secretAccessKey
      ? { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) }
      : null,
  };
  const region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION");
  if (region) fromEnv.region = region;
  const endpoint = value("AWS_ENDPOINT_URL_S3") ?? value("AWS_ENDPOINT_URL");
  if (endpoint) fromEnv.endpoint = endpoint;
  const merged: S3ClientOptions = { ...fromEnv };
  for (const [name, v] of Object.entries(options)) {
    if (v !== undefined) (merged as unknown as Record<string, unknown>)[name] = v;
  }
  return merged;
}
