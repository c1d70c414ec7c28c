/**
 * Builds cpp/tools/obd_fuzz with AddressSanitizer + UBSan and runs each
 * target for a few seconds over the vectors. A crash, a sanitizer report or
 * a hang fails the test; the crashing input is saved to the OS temp dir.
 * OBD_FUZZ_SEED and OBD_FUZZ_SECONDS override the defaults.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build', 'asan');
const VEC = '/work/shared/vectors';
const SECONDS = Number(process.env.OBD_FUZZ_SECONDS ?? 15);
const SEED = process.env.OBD_FUZZ_SEED ?? '1';

/** Each target and its seed corpus (the driver adds small built-in seeds too). */
const TARGETS: Record<string, string[]> = {
  zfile: [
    `${VEC}/zfile/A.lz4bs4.zfile`,
    `${VEC}/zfile/A.zstdbs4.zfile`,
    `${VEC}/zfile/A.lz4bs4.tar`,
    `${VEC}/zfile/A.commit.zfile-tool-lz4`,
  ],
  tar: [`${VEC}/zfile/A.lz4bs4.tar`, `${VEC}/inputs/layer1.tar`, `${VEC}/inputs/layer2.tar`],
  tar_stream: [`${VEC}/inputs/layer1.tar.gz`, `${VEC}/inputs/layer2.tar`],
  lsmt: [`${VEC}/lsmt/A.commit`, `${VEC}/lsmt/B.commit`, `${VEC}/lsmt/A.sealed`, `${VEC}/lsmt/B.rw.index`, `${VEC}/zfile/A.lz4bs4.tar`],
};

let exe: string;

beforeAll(async () => {
  const opts = { cwd: root, maxBuffer: 64 << 20 };
  await run('cmake', ['-S', '.', '-B', buildDir, '-G', 'Ninja', '-DOBD_ASAN=ON', '-DCMAKE_BUILD_TYPE=Debug'], opts);
  await run('ninja', ['-C', buildDir, 'obd_fuzz'], opts);
  exe = path.join(buildDir, 'obd_fuzz');
}, 600_000);

describe('obd_fuzz under AddressSanitizer', () => {
  it.each(Object.keys(TARGETS))(
    'target %s survives mutated vectors',
    async (target) => {
      const args = ['--target', target, '--seconds', String(SECONDS), '--seed', SEED, '--crash-dir', os.tmpdir()];
      let stdout = '';
      let stderr = '';
      let code = 0;
      try {
        ({ stdout, stderr } = await run(exe, [...args, ...TARGETS[target]!], {
          maxBuffer: 64 << 20,
          env: { ...process.env, ASAN_OPTIONS: 'abort_on_error=0:detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1' },
        }));
      } catch (e) {
        const err = e as { code?: number; stdout?: string; stderr?: string };
        code = typeof err.code === 'number' ? err.code : -1;
        stdout = err.stdout ?? '';
        stderr = err.stderr ?? String(e);
      }
      const log = `seed ${SEED}\n${stdout}\n${stderr.slice(-20000)}`;
      expect(code, log).toBe(0);
      expect(stderr, log).not.toMatch(/AddressSanitizer|LeakSanitizer|runtime error:/);
      expect(stdout).toMatch(/no crash/);
    },
    SECONDS * 1000 + 60_000,
  );
});
