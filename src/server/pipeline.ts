/**
 * One `POST /v2/pipeline`: the requests run in order on one stream (new, or found by its baton), each
 * answered whatever happened to the others; the stream is held for the next request unless the pipeline
 * closed it.
 *
 * @module
 */

import type { Replica } from "../replica/replica.ts";
import { decodePipeline, protoError } from "./hrana_proto.ts";
import { HranaStream, type StreamLimits } from "./hrana_stream.ts";
import type { StreamTable } from "./streams.ts";

/** What a pipeline runs against. */
export interface PipelineContext {
  database: string;
  replica: Replica;
  streams: StreamTable;
  limits: StreamLimits;
}

/** Runs the pipeline in `body` (parsed JSON) and returns the response body. */
export async function runPipeline(body: unknown, context: PipelineContext): Promise<string> {
  const { baton, requests } = decodePipeline(body);
  const closes = requests.some((r) => r.type === "close");
  let stream: HranaStream;
  if (baton !== undefined) {
    stream = context.streams.take(baton, context.database);
  } else {
    if (!closes) context.streams.checkRoom();
    stream = new HranaStream(context.replica, context.limits);
  }
  stream.startPipeline();
  const results: string[] = [];
  let closed = false;
  for (const request of requests) {
    if (closed) {
      results.push(`{"type":"error","error":{"message":"The stream is closed","code":"STREAM_CLOSED"}}`);
      continue;
    }
    if (request.type === "close") {
      stream.close();
      closed = true;
      results.push(`{"type":"ok","response":{"type":"close"}}`);
      continue;
    }
    try {
      results.push(`{"type":"ok","response":${await stream.handle(request)}}`);
    } catch (error) {
      results.push(`{"type":"error","error":${JSON.stringify(protoError(error))}}`);
    }
  }
  let next = "null";
  if (!closed) {
    try {
      next = JSON.stringify(context.streams.put(stream, context.database));
    } catch (error) {
      stream.close();
      throw error;
    }
  }
  return `{"baton":${next},"base_url":null,"results":[${results.join(",")}]}`;
}
