/**
 * LSMT figures from cpp/tools/bench_lsmt.cpp (native loops, so JavaScript
 * call overhead does not hide the core's cost):
 *  - 4 KiB random reads through a 10-layer stack, plain and LZ4, against
 *    pread of a flat file with the same content (warm page cache);
 *  - merged-index lookups/s, 10 layers x 100k entries, one core, against
 *    std::lower_bound over the same merged array, in alternating slices of
 *    thread CPU time (lookup_ratio_vs_lower_bound, aim >= 4; lookup_isa
 *    names the SIMD variant picked at run time);
 *  - io_uring against pread (single reads, batches of 16);
 *  - commit throughput against copying the data file;
 *  - reads/s of 4 threads while 1 thread writes to the stack's append
 *    upper, against the same readers alone (mixed_*).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { nativeTool } from '../test/helpers/native-tools.js';

export async function run(): Promise<Record<string, number | string>> {
  const exe = await nativeTool('bench_lsmt');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-lsmt-'));
  try {
    const seconds = process.env.BENCH_SECONDS ?? '2';
    const { stdout } = await promisify(execFile)(exe, [dir, seconds], { maxBuffer: 1 << 20 });
    return JSON.parse(stdout) as Record<string, number | string>;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
