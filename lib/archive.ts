/** Layer blob decompression (gzip or zstd, detected by magic), done natively. */
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
