/**
 * rpull when the registry misbehaves under it (a fault proxy in front of a
 * real docker-registry) or the user interrupts it: nothing is left in
 * containerd — no lease, no ingest, no extraction snapshot, no image.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type TestContainerd } from './helpers/containerd.js';
import { spawnTool, waitFor } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { buildImage, writeOciLayout, type BuiltImage } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';

describe('rpull faults', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let c: TestContainerd;
  let img: BuiltImage;
  let ref: string;

  /** Runs rpull without blocking this process, which serves the fault proxy. */
  async function rpull(...args: string[]): Promise<{ code: number | null; stderr: string }> {
    const t = spawnTool('overlaybd', ['rpull', '--plain-http', '--snapshotter', 'overlayfs', '--address', c.socket, ...args]);
    const code = await new Promise<number | null>((resolve) => t.child.once('exit', (n) => resolve(n)));
    return { code, stderr: t.stderr };
  }

  /** What a failed pull must not leave behind in the namespace. */
  async function leftovers(): Promise<{ leases: string; active: string; snapshots: string[]; images: string }> {
    const snaps = (await c.ctr(['snapshots', '--snapshotter', 'overlayfs', 'ls'])).stdout.trim().split('\n').slice(1);
    return {
      leases: (await c.ctr(['leases', 'ls', '-q'])).stdout.trim(),
      active: (await c.ctr(['content', 'active'])).stdout.trim().split('\n').slice(1).join('\n'),
      snapshots: snaps.filter((l) => l.startsWith('extract-')),
      images: (await c.ctr(['images', 'ls', '-q'])).stdout.trim(),
    };
  }
  const clean = { leases: '', active: '', snapshots: [], images: '' };

  beforeAll(async () => {
    reg = await startRegistry({ mode: 'plain' });
    // A layer of 4 MiB of incompressible bytes, so a stalled download is mid-blob.
    const noise = Buffer.alloc(4 << 20);
    for (let i = 0; i < noise.length; i += 4) noise.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i);
    img = buildImage({ layers: [[{ path: 'noise.bin', content: noise }]] });
    const layout = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-rpull-faults-'));
    try {
      writeOciLayout(layout, { v1: img });
      await skopeoCopy(layout, 'v1', `${reg.host}/demo/noise:v1`);
    } finally {
      fs.rmSync(layout, { recursive: true, force: true });
    }
    proxy = await startFaultProxy(reg.url);
    ref = `${proxy.host}/demo/noise:v1`;
    c = await startContainerd();
  });

  afterAll(async () => {
    await c?.stop();
    await proxy?.close();
    await reg?.stop();
  });

  it('fails with DIGEST_MISMATCH on a corrupted layer blob and removes the extraction snapshot', async () => {
    proxy.reset();
    proxy.add({ method: 'GET', path: new RegExp(`/blobs/${img.layers[0]!.digest}`), times: 10, action: { kind: 'corrupt', offset: 1000 } });
    const r = await rpull(ref);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/DIGEST_MISMATCH: .*pull blob .*sha256:/);
    expect(await leftovers()).toEqual(clean);
  });

  it('stops on SIGINT in the middle of a layer download, leaving nothing behind', async () => {
    proxy.reset();
    proxy.add({ method: 'GET', path: new RegExp(`/blobs/${img.layers[0]!.digest}`), action: { kind: 'stall', afterBytes: 1 << 20 } });
    const t = spawnTool('overlaybd', ['rpull', '--plain-http', '--snapshotter', 'overlayfs', '--address', c.socket, ref]);
    const exited = new Promise<number | null>((resolve) => t.child.once('exit', (code) => resolve(code)));
    await waitFor(() => proxy.log.some((q) => q.fault === 'stall'), 'the stalled blob request');
    // The stalled bytes are in containerd's ingest by now or soon; interrupting either way must clean up.
    t.child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(t.stderr).toContain('interrupted by SIGINT');
    expect(await leftovers()).toEqual(clean);
  });

  it('pulls once the registry behaves', async () => {
    proxy.reset();
    const r = await rpull(ref);
    expect(r.code).toBe(0);
    expect((await c.ctr(['images', 'ls', '-q'])).stdout.trim()).toBe(ref);
    expect((await c.ctr(['leases', 'ls', '-q'])).stdout.trim()).toBe('');
  });
});
