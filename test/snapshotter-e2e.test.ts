/**
 * Issue 10's end-to-end checks, on one private containerd with
 * overlaybd-snapshotter (`obd`, autoRemoveDev), our device service (FUSE
 * frontend) and a docker-registry holding the converted bookworm image:
 * a lazy start that fetches little, writes kept in the container's layer
 * and committed, 20 containers on one device, a SIGKILLed snapshotter
 * that comes back under running containers, and nothing left behind.
 * Containers answer through a bind-mounted dir, not ctr's stdout (a short
 * task's stdout was seen to come back empty under load).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnTool, waitFor } from './helpers/cli.js';
import { mountsUnder, type TestContainerd } from './helpers/containerd.js';
import { startObdStack, type ObdStack } from './helpers/obd-stack.js';
import { blobBytesSince, logMark } from './helpers/registry-bytes.js';
import { remoteBookworm, type RemoteBookworm } from './helpers/remote-image.js';
import { startSnapshotter, type TestSnapshotter } from './helpers/snapshotter.js';
import { removeRuncContainers } from './helpers/runc.js';

const WRITABLE = 'containerd.io/snapshot/overlaybd.writable';
const PARALLEL = 20;
const CONFIGFS = '/sys/kernel/config/target/core';
// Our own namespace: runc's state dir is per namespace and shared by every containerd here.
const NS = `e2e-${process.pid}`;

/** Entries under the TCMU configfs tree (none where the module is absent). */
function configfsEntries(): string[] {
  if (!fs.existsSync(CONFIGFS)) return [];
  return fs.readdirSync(CONFIGFS).flatMap((hba) => {
    const dir = path.join(CONFIGFS, hba);
    return fs.statSync(dir).isDirectory() ? fs.readdirSync(dir).map((d) => `${hba}/${d}`) : [];
  });
}

describe('containerd + overlaybd-snapshotter end to end', () => {
  let image: RemoteBookworm;
  let stack: ObdStack;
  let snap: TestSnapshotter;
  let cd: TestContainerd;
  let ref: string;
  let out: string;
  let outMount: string;
  let configfsBefore: string[];
  const devices = () => stack.devices();
  const ctr = (args: string[], timeoutMs = 300_000) => cd.ctr(args, { namespace: NS, timeoutMs });
  const obd = (args: string[]) => ctr(['snapshots', '--snapshotter', 'obd', ...args]);
  const answer = (name: string) => fs.readFileSync(path.join(out, name), 'utf8');
  const snapshotsLs = async () =>
    (await obd(['ls'])).stdout
      .split('\n')
      .slice(1)
      .filter(Boolean)
      .map((l) => l.trim().split(/\s+/).join(' '))
      .sort();

  beforeAll(async () => {
    configfsBefore = configfsEntries();
    image = await remoteBookworm();
    ref = `${image.registry.host}/${image.repo}:${image.tag}`;
    stack = await startObdStack({
      name: 'e2e',
      snapshotter: { autoRemoveDev: true, mirrorRegistry: [{ host: image.registry.host, insecure: true }] },
      containerd: { plainHttpRegistries: [image.registry.host] },
    });
    ({ snap } = stack);
    cd = stack.cd!;
    out = path.join(stack.dir, 'out');
    fs.mkdirSync(out);
    outMount = `type=bind,src=${out},dst=/out,options=rbind:rw`;
  }, 600_000);

  afterAll(async () => {
    removeRuncContainers(NS);
    await stack?.stop();
    await image?.close();
  });

  it('rpull then ctr run prints /etc/debian_version, fetching under 10% of the blob bytes', async () => {
    const from = logMark(image.registry.logFile);
    const t = spawnTool('overlaybd', ['rpull', '--plain-http', '--address', cd.socket, '--namespace', NS, '--snapshotter', 'obd', ref]);
    const code = await new Promise<number | null>((resolve) => t.child.once('exit', resolve));
    expect(code, t.stderr).toBe(0);
    await ctr(['run', '--rm', '--snapshotter', 'obd', '--mount', outMount, ref, 'first', '/bin/sh', '-c', 'cat /etc/debian_version > /out/first']);
    expect(answer('first')).toMatch(/^12\.\d+\n$/);
    const blobBytes = image.lowers.reduce((a, l) => a + l.size, 0);
    const fetched = blobBytesSince(image.registry.logFile, from);
    expect(fetched.gets).toBeGreaterThan(0);
    expect(fetched.bytes).toBeLessThan(blobBytes * 0.1);
  });

  it(`runs ${PARALLEL} containers started in parallel on one read-only device`, async () => {
    const ids = Array.from({ length: PARALLEL }, (_v, i) => `par${i}`);
    await Promise.all(ids.map((id) => ctr(['run', '-d', '--snapshotter', 'obd', '--mount', outMount, ref, id, '/bin/sh', '-c', `cat /etc/debian_version > /out/${id}; exec sleep 600`])));
    for (const id of ids) await waitFor(() => fs.existsSync(path.join(out, id)) && answer(id).length > 0, `${id}'s answer`, 120_000);
    for (const id of ids) expect(answer(id)).toMatch(/^12\.\d+\n$/);
    const tasks = (await ctr(['task', 'ls'])).stdout;
    for (const id of ids) expect(tasks).toMatch(new RegExp(`^${id}\\s+\\d+\\s+RUNNING$`, 'm'));
    expect(await devices()).toHaveLength(1);
  });

  it('keeps running containers reading after a SIGKILLed snapshotter restarts, and new ones start', async () => {
    const before = await snapshotsLs();
    expect(before.length).toBeGreaterThan(PARALLEL);
    snap.child.kill('SIGKILL');
    await waitFor(() => snap.child.exitCode !== null || snap.child.signalCode !== null, 'the snapshotter to die');
    await snap.kill();
    // Running containers read files nothing read before (the device service still serves them).
    await ctr(['task', 'exec', '--exec-id', 'read1', 'par0', '/bin/sh', '-c', 'cat /etc/debian_version > /out/exec0; md5sum /usr/bin/apt-get > /out/exec0.md5']);
    expect(answer('exec0')).toMatch(/^12\.\d+\n$/);
    expect(answer('exec0.md5')).toMatch(/^[0-9a-f]{32}\s+\/usr\/bin\/apt-get\n$/);

    snap = stack.snap = await startSnapshotter(stack.snapshotterConfig, snap.dir);
    // containerd redials its proxy with a backoff of up to 3 s: the first calls may still find it gone.
    expect(await retried(snapshotsLs)).toEqual(before);
    await ctr(['task', 'exec', '--exec-id', 'read2', 'par1', '/bin/sh', '-c', 'md5sum /usr/bin/dpkg > /out/exec1.md5']);
    expect(answer('exec1.md5')).toMatch(/^[0-9a-f]{32}\s+\/usr\/bin\/dpkg\n$/);
    await ctr(['run', '--rm', '--snapshotter', 'obd', '--mount', outMount, ref, 'after-restart', '/bin/sh', '-c', 'cat /etc/debian_version > /out/after']);
    expect(answer('after')).toMatch(/^12\.\d+\n$/);
    expect(await snapshotsLs()).toEqual(before);
    expect(await devices()).toHaveLength(1);

    const ids = Array.from({ length: PARALLEL }, (_v, i) => `par${i}`);
    for (const id of ids) await ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    for (const id of ids) await ctr(['task', 'delete', '--force', id]).catch(() => ctr(['task', 'delete', '--force', id]));
    await ctr(['containers', 'delete', ...ids]);
  });

  it("keeps a container's writes in its layer; a commit of it runs with them (rwMode dir)", async () => {
    // A writable overlaybd layer (upstream's way to commit a container), chosen per container by label.
    await ctr(['run', '--snapshotter', 'obd', '--snapshotter-label', `${WRITABLE}=dir`, ref, 'writer', '/bin/sh', '-c', 'echo kept > /kept && cp /etc/debian_version /etc/copied']);
    await obd(['commit', 'writer-layer', 'writer']);
    const info = JSON.parse((await obd(['info', 'writer-layer'])).stdout) as { Kind: string; Labels: Record<string, string> };
    expect(info.Kind).toBe('Committed');
    expect(info.Labels['containerd.io/snapshot/overlaybd.localcommitpath']).toMatch(/\/fs\/overlaybd\.sealed$/);

    const rootfs = await mountSnapshot('on-writer', 'writer-layer');
    try {
      await ctr(['run', '--rm', '--mount', outMount, '--rootfs', rootfs, 'reader', '/bin/sh', '-c', 'cat /kept /etc/copied > /out/reader']);
      expect(answer('reader')).toMatch(/^kept\n12\.\d+\n$/);
    } finally {
      execFileSync('umount', [rootfs]);
    }
    await obd(['rm', 'on-writer']);
    await ctr(['containers', 'delete', 'writer']);
    await obd(['rm', 'writer-layer']);
  });

  let ovlRootfs: string | undefined;
  it("keeps a container's writes in its overlay upper, and in a commit of it (rwMode overlayfs)", async () => {
    await ctr(['run', '--snapshotter', 'obd', ref, 'ovl-writer', '/bin/sh', '-c', 'echo upper > /in-upper']);
    const uppers = fs.readdirSync(`${snap.root}/snapshots`).filter((id) => fs.existsSync(`${snap.root}/snapshots/${id}/fs/in-upper`));
    expect(uppers).toHaveLength(1);
    await obd(['commit', 'ovl-layer', 'ovl-writer']);
    ovlRootfs = await mountSnapshot('on-ovl', 'ovl-layer');
    expect(fs.readFileSync(path.join(ovlRootfs, 'in-upper'), 'utf8')).toBe('upper\n');
  });

  // Upstream lists the parents' fs/ dirs here, and a remote layer's is empty (its data is on the
  // device): we stop at the first overlaybd layer and use its mounted device (docs/decisions.md).
  it('runs a container on a commit of an overlayfs upper with the image under it', async () => {
    try {
      expect(ovlRootfs).toBeDefined();
      expect(fs.readFileSync(path.join(ovlRootfs!, 'etc/debian_version'), 'utf8')).toMatch(/^12\.\d+\n$/);
      await ctr(['run', '--rm', '--mount', outMount, '--rootfs', ovlRootfs!, 'ovl-reader', '/bin/sh', '-c', 'cat /in-upper /etc/debian_version > /out/ovl-reader']);
      expect(answer('ovl-reader')).toMatch(/^upper\n12\.\d+\n$/);
    } finally {
      if (ovlRootfs) execFileSync('umount', [ovlRootfs]);
      await obd(['rm', 'on-ovl']).catch(() => {});
      await ctr(['containers', 'delete', 'ovl-writer']).catch(() => {});
      await obd(['rm', 'ovl-layer']).catch(() => {});
    }
    // autoRemoveDev: the image's device goes with on-ovl, the last snapshot mounted over it (through
    // the commit), once containerd's garbage collection has removed that snapshot here.
    for (let i = 0; i < 100 && (await devices()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await devices()).toEqual([]);
  });

  it('ctr rm and ctr images rm leave no device, mount, configfs entry or snapshot dir', async () => {
    await ctr(['run', '-d', '--snapshotter', 'obd', ref, 'last', 'sleep', '600']);
    expect(await devices()).toHaveLength(1);
    await ctr(['task', 'kill', '-s', 'SIGKILL', 'last']);
    await ctr(['task', 'delete', '--force', 'last']).catch(() => ctr(['task', 'delete', '--force', 'last']));
    await ctr(['containers', 'delete', 'last']);
    await ctr(['images', 'rm', '--sync', ref]);
    for (let i = 0; i < 100 && (await snap.list()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await snap.list()).toEqual([]);
    expect(await devices()).toEqual([]);
    expect(mountsUnder(snap.dir)).toEqual([]);
    expect(configfsEntries()).toEqual(configfsBefore);
    expect(fs.readdirSync(`${snap.root}/snapshots`)).toEqual([]);
  });

  /** `fn` until it resolves, for up to 30 s. */
  async function retried<T>(fn: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (e) {
        if (i >= 60 || !/connection refused|unavailable/i.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** `ctr snapshots prepare` of `key` on `parent`, mounted at a new dir under tmp. */
  async function mountSnapshot(key: string, parent: string): Promise<string> {
    // Go's mount.Mount, printed without json tags.
    const mounts = JSON.parse((await obd(['prepare', '--mounts', key, parent])).stdout) as { Type: string; Source: string; Options: string[] | null }[];
    expect(mounts).toHaveLength(1);
    const m = { type: mounts[0]!.Type, source: mounts[0]!.Source, options: mounts[0]!.Options ?? [] };
    const dir = path.join(stack.dir, key);
    fs.mkdirSync(dir);
    // A bind mount is not a filesystem type to mount(8): its options say bind.
    const type = m.type === 'bind' ? [] : ['-t', m.type];
    execFileSync('mount', [...type, m.source, dir, ...(m.options.length ? ['-o', m.options.join(',')] : [])]);
    return dir;
  }
});
