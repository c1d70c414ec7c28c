/** Brute-force checks of the native index structures (cpp/tools/lsmt_selftest.cpp). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { nativeTool } from './helpers/native-tools.js';

it('RoIndex search tree, RwIndex and merge agree with per-sector models', async () => {
  const exe = await nativeTool('lsmt_selftest');
  const { stdout } = await promisify(execFile)(exe);
  expect(stdout).toContain('lsmt_selftest: ok');
}, 300_000);
