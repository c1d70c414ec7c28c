/**
 * overlaybd-snapshotter as containerd's proxy snapshotter `obd` with plain
 * OCI layers: import unpacks through it, runc runs a container on its
 * overlay, `ctr snapshots` reads and removes through it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type TestContainerd } from './helpers/containerd.js';
import { busyboxImageTar, startSnapshotter, type TestSnapshotter } from './helpers/snapshotter.js';

const IMAGE = 'docker.io/library/demo-busybox:latest';

describe('overlaybd-snapshotter under containerd (plain OCI layers)', () => {
  let snap: TestSnapshotter;
  let cd: TestContainerd;
  let work: string;
  const obd = (args: string[]) => cd.ctr(['snapshots', '--snapshotter', 'obd', ...args]);

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-snap-ctd-'));
    // The snapshotter first: containerd's dialer then needs no reconnect backoff.
    snap = await startSnapshotter();
    cd = await startContainerd({ proxySnapshotters: { obd: snap.socket } });
  });

  afterAll(async () => {
    await cd?.stop();
    await snap?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('unpacks an imported image and runs a container on it', async () => {
    const tar = busyboxImageTar(work);
    await cd.ctr(['image', 'import', '--snapshotter', 'obd', '--base-name', 'docker.io/library/demo-busybox', tar]);
    const run = await cd.ctr(['run', '--rm', '--snapshotter', 'obd', IMAGE, 'hello1']);
    expect(run.stdout).toContain('hello from busybox');
    const ov = await cd.ctr(['run', '--rm', '--snapshotter', 'obd', IMAGE, 'hello2', '/bin/sh', '-c', 'echo hi; mount | head -1']);
    expect(ov.stdout).toContain('hi');
    expect(ov.stdout).toMatch(new RegExp(`overlay on / type overlay .*lowerdir=${snap.root}/snapshots/1/fs`));
  });

  it('lists, shows and measures snapshots through ctr', async () => {
    const ls = (await obd(['ls'])).stdout;
    const committed = ls.split('\n').find((l) => l.includes('Committed'));
    expect(committed).toBeDefined();
    const name = committed!.trim().split(/\s+/)[0]!;
    const info = JSON.parse((await obd(['info', name])).stdout) as { Kind: string; Name: string };
    expect(info).toMatchObject({ Kind: 'Committed', Name: name });
    const usage = (await obd(['usage', name])).stdout;
    // busybox-static is about 1 MiB.
    expect(usage).toMatch(new RegExp(`${name}\\s+\\d+(\\.\\d+)?\\s*(MiB|KiB)\\s+\\d+`));
  });

  it("keeps a container's writes in its own upper", async () => {
    // Without --rm the container (and its snapshot) outlives the task.
    await cd.ctr(['run', '--snapshotter', 'obd', IMAGE, 'writer', '/bin/sh', '-c', 'echo data > /tmp/out']);
    const { stdout } = await obd(['info', 'writer']);
    const info = JSON.parse(stdout) as { Kind: string; Parent: string };
    expect(info.Kind).toBe('Active');
    const files = fs.readdirSync(path.join(snap.root, 'snapshots')).map((id) => path.join(snap.root, 'snapshots', id, 'fs', 'tmp', 'out'));
    const written = files.filter((f) => fs.existsSync(f));
    expect(written).toHaveLength(1);
    expect(fs.readFileSync(written[0]!, 'utf8')).toBe('data\n');
    const upperId = path.basename(path.dirname(path.dirname(path.dirname(written[0]!))));
    await cd.ctr(['container', 'rm', 'writer']);
    // containerd's GC removes the snapshot and calls Cleanup; the dir goes with it.
    for (let i = 0; i < 100 && fs.existsSync(path.join(snap.root, 'snapshots', upperId)); i++) await new Promise((r) => setTimeout(r, 100));
    expect(fs.existsSync(path.join(snap.root, 'snapshots', upperId))).toBe(false);
  });

  it('removes image snapshots with ctr snapshots rm, leaves no dirs', async () => {
    await obd(['prepare', 'scratch']);
    expect((await snap.list(['name~=/scratch$/'])).map((i) => i.kind)).toEqual(['ACTIVE']);
    await obd(['rm', 'scratch']);
    await cd.ctr(['image', 'rm', '--sync', IMAGE]);
    for (let i = 0; i < 100 && (await snap.list()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await snap.list()).toEqual([]);
    expect(fs.readdirSync(path.join(snap.root, 'snapshots'))).toEqual([]);
  });
});
