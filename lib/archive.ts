/** Layer blob decompression (gzip or zstd, detected by magic), done natively. */
import { argument, filePath } from './config.js';
import { native } from './native.js';

export interface DecompressResult {
  compression: 'gzip' | 'zstd' | 'none';
  /** Bytes of the uncompressed output. */
  bytes: number;
}

/** Writes the uncompressed content of `src` to `dst` (replaced if present). */
export async function decompressFile(src: string, dst: string): Promise<DecompressResult> {
  return (await native().decompressFile(argument(filePath, src, 'src'), argument(filePath, dst, 'dst'))) as DecompressResult;
}
