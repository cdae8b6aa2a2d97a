/**
 * One `POST /v2/pipeline`: the requests run in order on one stream (new, or found by its baton), each
 * answered whatever happened to the others; the stream is held for the next request unless the pipeline
 * closed it.
 *
 * @module
 */

import type { Replica } from "../replica/replica.ts";
import { notReached, type Served } from "./bookmarks.ts";
import { decodePipeline } from "./hrana_proto.ts";
import { HranaStream, type StreamLimits } from "./hrana_stream.ts";
import type { StreamTable } from "./streams.ts";

/** What a pipeline runs against. */
export interface PipelineContext {
  database: string;
  replica: Replica;
  streams: StreamTable;
  limits: StreamLimits;
  /** The replica's snapshot as the request arrived (after any wait for its minimum sequence). */
  served: Served;
  /** The request's minimum sequence (`Tessera-Min-Sequence`), if it gave one. */
  minSequence?: number | undefined;
}

/**
 * Runs the pipeline in `body` (parsed JSON) and returns the response body, and the oldest snapshot its
 * statements read (a held transaction's, when older than the replica's).
 */
export async function runPipeline(
  body: unknown,
  context: PipelineContext,
): Promise<{ text: string; served: Served }> {
  const { baton, requests } = decodePipeline(body);
  const closes = requests.some((r) => r.type === "close");
  let stream: HranaStream;
  if (baton !== undefined) {
    stream = context.streams.take(baton, context.database);
    // A transaction keeps its snapshot: it cannot move forward to the sequence the client asks for.
    const pinned = stream.pinned;
    if (context.minSequence !== undefined && pinned !== undefined && pinned.sequence < context.minSequence) {
      stream.close();
      throw notReached(
        pinned.sequence,
        context.minSequence,
        "in the stream's transaction, which keeps the snapshot it began on (the stream is closed): begin " +
          "the transaction again",
      );
    }
  } else {
    stream = new HranaStream(context.replica, context.limits);
  }
  const reserved = !closes;
  if (reserved) context.streams.reserve({ taken: baton !== undefined });
  try {
    return await run(stream, requests, context);
  } finally {
    if (reserved) context.streams.unreserve();
  }
}

async function run(
  stream: HranaStream,
  requests: ReturnType<typeof decodePipeline>["requests"],
  context: PipelineContext,
): Promise<{ text: string; served: Served }> {
  stream.startPipeline(context.served);
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
      results.push(`{"type":"error","error":${stream.errorJson(error)}}`);
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
  return {
    text: `{"baton":${next},"base_url":null,"results":[${results.join(",")}]}`,
    served: stream.served,
  };
}
