import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mountsUnder, startContainerd } from './helpers/containerd.js';

describe('test containerd', () => {
  it('starts a private containerd with a proxy snapshotter and removes it', async () => {
    const c = await startContainerd({ proxySnapshotters: { obd: '/tmp/none.sock' } });
    try {
      const { stdout } = await c.ctr(['plugins', 'ls']);
      expect(stdout).toMatch(/io\.containerd\.snapshotter\.v1\s+obd\s+.*ok/);
      expect(stdout).toMatch(/io\.containerd\.snapshotter\.v1\s+overlayfs\s+.*ok/);
    } finally {
      await c.stop();
    }
    expect(fs.existsSync(c.dir)).toBe(false);
    expect(mountsUnder(c.dir)).toEqual([]);
  });
});
