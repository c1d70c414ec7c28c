/**
 * overlaybd layers through overlaybd-snapshotter: the pull Prepares
 * containerd's unpacker makes (snapshot.ref + the layer's
 * containerd.io/snapshot/* annotations + rpull's image-ref) become remote
 * snapshots answered with AlreadyExists; a rootfs on them is an overlay on
 * the image's block device, attached through our device service (FUSE
 * frontend) and read lazily from a test registry.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from './helpers/containerd.js';
import { startObdStack, type ObdStack } from './helpers/obd-stack.js';
import { remoteBookworm, type RemoteBookworm } from './helpers/remote-image.js';
import type { TestSnapshotter } from './helpers/snapshotter.js';

const L = {
  ref: 'containerd.io/snapshot.ref',
  imageRef: 'containerd.io/snapshot/image-ref',
  digest: 'containerd.io/snapshot/overlaybd/blob-digest',
  size: 'containerd.io/snapshot/overlaybd/blob-size',
  remote: 'containerd.io/snapshot/remote',
  writable: 'containerd.io/snapshot/overlaybd.writable',
  localCommitPath: 'containerd.io/snapshot/overlaybd.localcommitpath',
};

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

describe('overlaybd-snapshotter with overlaybd layers', () => {
  let image: RemoteBookworm;
  let stack: ObdStack;
  let snap: TestSnapshotter;
  const chain: string[] = [];
  // What `overlaybd list` prints, asked in-process (a tool start costs seconds here).
  const devices = () => stack.devices();

  beforeAll(async () => {
    image = await remoteBookworm();
    stack = await startObdStack({ name: 'snap-obd', snapshotter: { mirrorRegistry: [{ host: image.registry.host, insecure: true }] } });
    ({ snap } = stack);
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
    await image?.close();
  });

  it('commits each remote layer under its chainID and answers AlreadyExists', async () => {
    const imageRef = `${image.registry.host}/${image.repo}:${image.tag}`;
    for (const [i, l] of image.lowers.entries()) {
      // Chain ids as containerd derives them (here over the blob digests; any unique names do).
      const ref = i === 0 ? l.digest : sha(`${chain[i - 1]} ${l.digest}`);
      const labels = { [L.ref]: ref, [L.imageRef]: imageRef, [L.digest]: l.digest, [L.size]: String(l.size) };
      const err = await snap.call('Prepare', { key: `extract-${i} ${ref}`, parent: chain[i - 1] ?? '', labels }).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(err?.code).toBe(grpc.status.ALREADY_EXISTS);
      chain.push(ref);
      const st = await snap.call<{ info: { kind: string; parent: string; labels: Record<string, string> } }>('Stat', { key: ref });
      expect(st.info).toMatchObject({ kind: 'COMMITTED', parent: chain[i - 1] ?? '', labels: { ...labels, [L.remote]: 'remote snapshot' } });
    }
    const top = String(chain.length);
    const cfgFile = `${snap.root}/snapshots/${top}/block/config.v1.json`;
    expect(fs.statSync(cfgFile).mode & 0o777).toBe(0o600);
    const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    expect(cfg).toEqual({
      repoBlobUrl: image.repoBlobUrl,
      lowers: image.lowers.map((l, i) => ({ digest: l.digest, size: l.size, dir: `${snap.root}/snapshots/${i + 1}/fs` })),
      upper: {},
      resultFile: `${snap.root}/snapshots/${top}/block/init-debug.log`,
    });
    expect(await devices()).toEqual([]);
  });

  it('gives a rootfs overlay on the attached image, writes going to its upper', async () => {
    const top = chain.at(-1)!;
    const topId = String(chain.length);
    const res = await snap.call<{ mounts: { type: string; source: string; options: string[] }[] }>('Prepare', { key: 'default/1/rootfs', parent: top });
    expect(res.mounts).toHaveLength(1);
    const m = res.mounts[0]!;
    expect(m.type).toBe('overlay');
    const mountpoint = `${snap.root}/snapshots/${topId}/block/mountpoint`;
    expect(m.options).toContain(`lowerdir=${mountpoint}`);
    const dev = fs.readFileSync(`${snap.root}/snapshots/${topId}/block/backstore_mark`, 'utf8');
    expect((await devices()).map((d) => d.path)).toEqual([dev]);

    const rootfs = path.join(stack.dir, 'rootfs');
    fs.mkdirSync(rootfs);
    execFileSync('mount', ['-t', m.type, m.source, rootfs, '-o', m.options.join(',')]);
    try {
      expect(fs.readFileSync(path.join(rootfs, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
      fs.writeFileSync(path.join(rootfs, 'hello'), 'hi');
    } finally {
      execFileSync('umount', [rootfs]);
    }
    const upperId = String(chain.length + 1);
    expect(fs.readFileSync(`${snap.root}/snapshots/${upperId}/fs/hello`, 'utf8')).toBe('hi');
    // Mounts answers the same and leaves the device as it is.
    expect((await snap.call<{ mounts: unknown[] }>('Mounts', { key: 'default/1/rootfs' })).mounts).toEqual(res.mounts);
    expect(await devices()).toHaveLength(1);
    const u = await snap.call<{ size: string }>('Usage', { key: 'default/1/rootfs' });
    expect(Number(u.size)).toBeGreaterThan(0);
  });

  it('gives a writable overlaybd rootfs (rwMode dir) and seals it on Commit', async () => {
    const top = chain.at(-1)!;
    const labels = { [L.writable]: 'dir' };
    const res = await snap.call<{ mounts: { type: string; source: string; options: string[] }[] }>('Prepare', { key: 'rw-1', parent: top, labels });
    const id = String(chain.length + 2);
    const mountpoint = `${snap.root}/snapshots/${id}/block/mountpoint`;
    expect(res.mounts).toEqual([{ type: 'bind', source: mountpoint, target: '', options: ['rw', 'rbind'] }]);
    expect(fs.readFileSync(path.join(mountpoint, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
    fs.writeFileSync(path.join(mountpoint, 'built'), 'layer');
    const cfg = JSON.parse(fs.readFileSync(`${snap.root}/snapshots/${id}/block/config.v1.json`, 'utf8'));
    expect(cfg.upper).toEqual({ index: `${snap.root}/snapshots/${id}/block/writable_index`, data: `${snap.root}/snapshots/${id}/block/writable_data`, vsize: 64 });
    expect(await devices()).toHaveLength(2);

    await snap.call('Commit', { name: 'layer-rw', key: 'rw-1', labels });
    expect(await devices()).toHaveLength(1);
    const sealed = `${snap.root}/snapshots/${id}/fs/overlaybd.sealed`;
    expect(fs.existsSync(sealed)).toBe(true);
    expect(fs.existsSync(`${snap.root}/snapshots/${id}/block/writable_data`)).toBe(false);
    const st = await snap.call<{ info: { labels: Record<string, string> } }>('Stat', { key: 'layer-rw' });
    expect(st.info.labels[L.localCommitPath]).toBe(sealed);
    expect(st.info.labels[L.writable]).toBeUndefined();
    const committed = JSON.parse(fs.readFileSync(`${snap.root}/snapshots/${id}/block/config.v1.json`, 'utf8'));
    expect(committed.lowers.at(-1)).toEqual({ dir: `${snap.root}/snapshots/${id}/fs` });
    expect(committed.lowers).toHaveLength(image.lowers.length + 1);

    // A rootfs on the sealed layer sees its file over the image.
    const ro = await snap.call<{ mounts: { type: string; source: string; options: string[] }[] }>('View', { key: 'view-2', parent: 'layer-rw' });
    expect(ro.mounts).toEqual([{ type: 'bind', source: mountpoint, target: '', options: ['ro', 'rbind'] }]);
    expect(fs.readFileSync(path.join(mountpoint, 'built'), 'utf8')).toBe('layer');
    expect(fs.readFileSync(path.join(mountpoint, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
  });

  it('returns the raw device in rwMode dev', async () => {
    const res = await snap.call<{ mounts: { type: string; source: string; options: string[] }[] }>('Prepare', { key: 'rw-dev', parent: chain.at(-1)!, labels: { [L.writable]: 'dev' } });
    expect(res.mounts).toHaveLength(1);
    expect(res.mounts[0]).toMatchObject({ type: 'ext4', options: ['rw', 'discard'] });
    expect(res.mounts[0]!.source).toMatch(/^\/dev\/loop\d+$/);
    const mnt = path.join(stack.dir, 'dev-mnt');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'ext4', res.mounts[0]!.source, mnt]);
    try {
      expect(fs.readFileSync(path.join(mnt, 'etc/debian_version'), 'utf8')).toMatch(/^12\./);
    } finally {
      execFileSync('umount', [mnt]);
    }
    await snap.call('Remove', { key: 'rw-dev' });
    expect((await devices()).map((d) => d.path)).not.toContain(res.mounts[0]!.source);
  });

  it('detaches on Remove of the layer and leaves no device, mount or dir', async () => {
    await snap.call('Remove', { key: 'view-2' });
    await snap.call('Remove', { key: 'layer-rw' });
    await snap.call('Remove', { key: 'default/1/rootfs' });
    expect(await devices()).toHaveLength(1);
    for (const ref of [...chain].reverse()) await snap.call('Remove', { key: ref });
    expect(await devices()).toEqual([]);
    expect(mountsUnder(snap.dir)).toEqual([]);
    expect(fs.readdirSync(`${snap.root}/snapshots`)).toEqual([]);
    expect(await snap.list()).toEqual([]);
  });
});
