/**
 * What a docker-registry served, read from its log: each completed request
 * logs `http.response.written`, so the bytes a pull or a lazy start fetched
 * are counted where they leave the registry, whoever asked.
 */
import fs from 'node:fs';

export interface ServedRequest {
  method: string;
  uri: string;
  status: number;
  written: number;
}

/** The log's end now: give it to `servedSince` to count only what comes after. */
export function logMark(logFile: string): number {
  return fs.statSync(logFile).size;
}

/** Every completed request logged after `from` (a `logMark`). */
export function servedSince(logFile: string, from: number): ServedRequest[] {
  return fs
    .readFileSync(logFile)
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .filter((l) => l.includes('msg="response completed'))
    .map((l) => ({
      method: /http\.request\.method=(\S+)/.exec(l)?.[1] ?? '',
      uri: /http\.request\.uri="?([^"\s]+)/.exec(l)?.[1] ?? '',
      status: Number(/http\.response\.status=(\d+)/.exec(l)?.[1] ?? 0),
      written: Number(/http\.response\.written=(\d+)/.exec(l)?.[1] ?? 0),
    }));
}

/** Bytes of blob bodies served after `from`, and how many blob GETs served them. */
export function blobBytesSince(logFile: string, from: number): { bytes: number; gets: number } {
  const gets = servedSince(logFile, from).filter((r) => r.method === 'GET' && r.uri.includes('/blobs/'));
  return { bytes: gets.reduce((a, r) => a + r.written, 0), gets: gets.length };
}
