/**
 * A converted overlaybd image pulled by containerd's own `ctr image pull`
 * into overlaybd-snapshotter: without rpull's image-ref label the layers
 * are not remote, so containerd downloads and unpacks each blob (a tar
 * holding overlaybd.commit) and the snapshotter commits them as local
 * overlaybd layers; `ctr run` then runs on an overlay over the image's
 * block device, attached through the device service and (autoRemoveDev)
 * detached when the container goes.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder, type TestContainerd } from './helpers/containerd.js';
import { startObdStack, type ObdStack } from './helpers/obd-stack.js';
import { remoteBookworm, type RemoteBookworm } from './helpers/remote-image.js';
import type { TestSnapshotter } from './helpers/snapshotter.js';

describe('ctr image pull + ctr run of an overlaybd image', () => {
  let image: RemoteBookworm;
  let stack: ObdStack;
  let snap: TestSnapshotter;
  let cd: TestContainerd;
  let ref: string;
  const devices = () => stack.devices();

  beforeAll(async () => {
    image = await remoteBookworm();
    ref = `${image.registry.host}/${image.repo}:${image.tag}`;
    stack = await startObdStack({ name: 'snap-pull', snapshotter: { autoRemoveDev: true }, containerd: { plainHttpRegistries: [image.registry.host] } });
    ({ snap } = stack);
    cd = stack.cd!;
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
    await image?.close();
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
