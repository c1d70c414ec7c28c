/**
 * A converted overlaybd image pulled by containerd's own `ctr image pull`
 * into overlaybd-snapshotter: without rpull's image-ref label the layers
 * are not remote, so containerd downloads and unpacks each blob (a tar
 * holding overlaybd.commit) and the snapshotter commits them as local
 * overlaybd layers; `ctr run` then runs on an overlay over the image's
 * block device, attached through the device service and (autoRemoveDev)
 * detached when the container goes.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callService } from '../lib/device/service.js';
import { spawnTool, waitFor } from './helpers/cli.js';
import { mountsUnder, startContainerd, type TestContainerd } from './helpers/containerd.js';
import { stopChild, trackChild } from './helpers/registry.js';
import { remoteBookworm, writeGlobalConfig, type RemoteBookworm } from './helpers/remote-image.js';
import { startSnapshotter, type TestSnapshotter } from './helpers/snapshotter.js';
import { tempDir } from './helpers/vectors.js';

describe('ctr image pull + ctr run of an overlaybd image', () => {
  let tmp: { dir: string; cleanup: () => void };
  let image: RemoteBookworm;
  let device: ReturnType<typeof spawnTool>;
  let deviceSocket: string;
  let snap: TestSnapshotter;
  let cd: TestContainerd;
  let ref: string;
  const devices = async () => (await callService(deviceSocket, 'GET', '/list')) as { path: string; config: string }[];

  beforeAll(async () => {
    tmp = tempDir('obd-snap-pull-');
    image = await remoteBookworm();
    ref = `${image.registry.host}/${image.repo}:${image.tag}`;
    deviceSocket = path.join(tmp.dir, 'dev.sock');
    const global = writeGlobalConfig(path.join(tmp.dir, 'svc'), { enableAudit: false, controlSocket: deviceSocket }).file;
    device = spawnTool('overlaybd', ['serve', '--global', global]);
    trackChild(device.child);
    await waitFor(() => fs.existsSync(deviceSocket), 'the device service socket');
    snap = await startSnapshotter({ deviceSocket, deviceFrontend: 'fuse', autoRemoveDev: true });
    cd = await startContainerd({ proxySnapshotters: { obd: snap.socket }, plainHttpRegistries: [image.registry.host] });
  }, 600_000);

  afterAll(async () => {
    await cd?.stop();
    await snap?.stop();
    await stopChild(device?.child, 15_000);
    await image?.close();
    for (const m of mountsUnder(tmp.dir)) execFileSync('umount', ['-l', m]);
    tmp?.cleanup();
  });

  it('unpacks the layers as local overlaybd layers and runs a container on them', async () => {
    await cd.ctr(['image', 'pull', '--hosts-dir', cd.hostsDir, '--snapshotter', 'obd', ref], { timeoutMs: 300_000 });
    const layers = (await snap.list(['kind==committed'])).length;
    expect(layers).toBe(image.lowers.length);
    const top = String(layers);
    expect(fs.existsSync(`${snap.root}/snapshots/${top}/fs/overlaybd.commit`)).toBe(true);
    const cfg = JSON.parse(fs.readFileSync(`${snap.root}/snapshots/${top}/block/config.v1.json`, 'utf8'));
    expect(cfg.lowers).toEqual(image.lowers.map((_l, i) => ({ dir: `${snap.root}/snapshots/${i + 1}/fs` })));

    const run = await cd.ctr(['run', '--rm', '--snapshotter', 'obd', ref, 'c1', '/bin/sh', '-c', 'cat /etc/debian_version; echo x > /tmp/y && cat /tmp/y']);
    expect(run.stdout).toMatch(/^12\.\d+\nx\n$/);
    // autoRemoveDev: containerd's GC removes the container's snapshot, and the image's device goes with it.
    for (let i = 0; i < 100 && (await devices()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await devices()).toEqual([]);
    expect(mountsUnder(snap.dir)).toEqual([]);
  });

  it('detaches and removes everything when the image goes', async () => {
    await cd.ctr(['image', 'rm', '--sync', ref]);
    for (let i = 0; i < 100 && (await snap.list()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await snap.list()).toEqual([]);
    expect(await devices()).toEqual([]);
    expect(mountsUnder(snap.dir)).toEqual([]);
    expect(fs.readdirSync(`${snap.root}/snapshots`)).toEqual([]);
  });
});
