/** Layer blob decompression (gzip or zstd, detected by magic), done natively, and the pipe that streams a blob to native code. */
import net from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { argument, filePath } from './config.js';
import { native } from './native.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** The compression of a layer blob from its first bytes (the same magic numbers the native reader checks). */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

export interface DecompressResult {
  compression: Compression;
  /** Bytes of the uncompressed output. */
  bytes: number;
}

/** Writes the uncompressed content of `src` to `dst` (replaced if present). */
export async function decompressFile(src: string, dst: string): Promise<DecompressResult> {
  return (await native().decompressFile(argument(filePath, src, 'src'), argument(filePath, dst, 'dst'))) as DecompressResult;
}

/** A layer blob the native apply reads from a pipe, with the digests it checks at the end. */
export interface LayerPipeInput {
  fd: number;
  /** sha256 of the compressed blob. */
  digest: string;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** Names the layer in a mismatch error. */
  what: string;
}

/** A streamed layer: the compressed bytes and what they must hash to. */
export interface LayerStream {
  body: Readable;
  digest: string;
  diffId: string;
  what: string;
}

/**
 * Runs `consume` on the read end of a pipe that `src.body` is written into
 * (a non-blocking socket, so the event loop never waits on the reader).
 * Native code owns the read end from the call on. When both fail, the
 * feeder's error is the cause unless it only says the reader went away.
 */
export async function feedThroughPipe<T>(src: LayerStream, consume: (input: LayerPipeInput) => Promise<T>): Promise<T> {
  const { readFd, writeFd } = native().makePipe() as { readFd: number; writeFd: number };
  const sock = new net.Socket({ fd: writeFd, readable: false, writable: true });
  const fed = pipeline(src.body, sock);
  fed.catch(() => {});
  let result: T;
  try {
    result = await consume({ fd: readFd, digest: src.digest, diffId: src.diffId, what: src.what });
  } catch (e) {
    sock.destroy();
    src.body.destroy();
    const f = await fed.then(
      () => undefined,
      (x: unknown) => x,
    );
    if (f && !readerGone(f)) throw f;
    throw e;
  }
  await fed;
  return result;
}

/** The pipe's reader closed its end (a native failure, reported by the reader itself). */
function readerGone(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED' || code === 'ECONNRESET';
}
