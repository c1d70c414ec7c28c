/** Layer blob decompression (gzip or zstd, detected by magic), done natively. */
import { z } from 'zod';
import { native } from './native.js';

export interface DecompressResult {
  compression: 'gzip' | 'zstd' | 'none';
  /** Bytes of the uncompressed output. */
  bytes: number;
}

/** Writes the uncompressed content of `src` to `dst` (replaced if present). */
export async function decompressFile(src: string, dst: string): Promise<DecompressResult> {
  const path = z.string().min(1);
  return (await native().decompressFile(path.parse(src), path.parse(dst))) as DecompressResult;
}
