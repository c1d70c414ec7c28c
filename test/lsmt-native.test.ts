/** The BlockDevice adapter self-test (cpp/tools/device_selftest.cpp). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { nativeTool } from './helpers/native-tools.js';

it('the BlockDevice adapter completes every request once and matches a model', async () => {
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-device-'));
  try {
    const exe = await nativeTool('device_selftest');
    const { stdout } = await promisify(execFile)(exe, [dir]);
    expect(stdout).toContain('8000 completions, 0 failures');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
