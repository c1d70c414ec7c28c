/** Native checks of the write and read paths (cpp/tools/core_selftest.cpp). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { nativeTool } from './helpers/native-tools.js';
import { tempDir } from './helpers/vectors.js';

const run = promisify(execFile);
const tmp = tempDir('obd-core-');
afterAll(tmp.cleanup);

it('a ZFile batch reads and decompresses each block once, however many requests share it', async () => {
  const { stdout } = await run(await nativeTool('core_selftest'), ['zfile-batch']);
  expect(stdout).toContain('core_selftest zfile-batch: ok');
}, 300_000);

it('racing writes to an upper: reads never see unwritten data, a reopen resolves LBAs as memory did', async () => {
  const { stdout } = await run(await nativeTool('core_selftest'), ['rw-race', tmp.dir]);
  expect(stdout).toContain('core_selftest rw-race: ok');
}, 300_000);

it('an io_uring wait that fails for good returns EIO instead of spinning', async () => {
  const { stdout } = await run(await nativeTool('core_selftest'), ['uring-wait'], { timeout: 60_000 });
  expect(stdout).toMatch(/core_selftest uring-wait: (ok|skipped)/);
}, 300_000);
