/**
 * `overlaybd rpull` against a real containerd 1.6 and docker-registry: the
 * full-download path through containerd's own overlayfs snapshotter (ctr
 * run then starts the image), the GC labels (a synchronous GC keeps it),
 * the registry requests made, platform selection, and the errors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerdConnection } from '../lib/containerd/index.js';
import { startContainerd, type TestContainerd } from './helpers/containerd.js';
import { runTool } from './helpers/cli.js';
import { blob, buildImage, buildIndex, busyboxImage, writeOciLayout, type BuiltImage } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';

/** The image with `annotations` on every layer descriptor of its manifest (as the convertor writes overlaybd's). */
function annotated(img: BuiltImage, annotations: (i: number) => Record<string, string>): BuiltImage {
  const m = JSON.parse(img.manifest.data.toString('utf8')) as { layers: { annotations?: Record<string, string> }[] };
  m.layers.forEach((l, i) => (l.annotations = annotations(i)));
  return { ...img, manifest: blob(img.manifest.mediaType, JSON.stringify(m)) };
}

/** The registry requests our client made since `from` (a log offset): `GET manifests/latest`, `GET blobs/sha256:..`. */
function requestsSince(reg: TestRegistry, from: number): string[] {
  return fs
    .readFileSync(reg.logFile, 'utf8')
    .slice(from)
    .split('\n')
    .filter((l) => l.includes('useragent=overlaybd-ts'))
    .map((l) => {
      const method = /http\.request\.method=(\S+)/.exec(l)?.[1];
      const uri = /http\.request\.uri="?([^"\s]+)/.exec(l)?.[1] ?? '';
      return `${method} ${uri.replace(/^\/v2\/[^]*?\/(manifests|blobs)\//, '$1/')}`;
    });
}

const logSize = (reg: TestRegistry) => fs.statSync(reg.logFile).size;

describe('overlaybd rpull', () => {
  let reg: TestRegistry;
  let c: TestContainerd;
  let layout: string;
  let amd64: BuiltImage;
  let arm64: BuiltImage;
  let ref: string;

  const rpull = (...args: string[]) => runTool('overlaybd', ['rpull', '--address', c.socket, ...args]);

  beforeAll(async () => {
    reg = await startRegistry({ mode: 'plain' });
    amd64 = busyboxImage();
    arm64 = buildImage({ architecture: 'arm64', layers: [[{ path: 'arm64.txt', content: 'an arm64 layer\n' }]] });
    layout = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-rpull-layout-'));
    writeOciLayout(layout, { latest: { index: buildIndex([amd64, arm64]), images: [amd64, arm64] } });
    await skopeoCopy(layout, 'latest', `${reg.host}/demo/busybox:latest`);
    ref = `${reg.host}/demo/busybox:latest`;
    c = await startContainerd({ plainHttpRegistries: [reg.host] });
  });

  afterAll(async () => {
    await c?.stop();
    await reg?.stop();
    if (layout) fs.rmSync(layout, { recursive: true, force: true });
  });

  it('pulls into overlayfs through containerd, and ctr run starts the image', async () => {
    const from = logSize(reg);
    const r = rpull('--plain-http', '--snapshotter', 'overlayfs', ref);
    expect(r.stderr).toContain('done');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/layer 1\/2 sha256:[0-9a-f]{64}: applied and committed/);
    expect(r.stderr).toMatch(/layer 2\/2 sha256:[0-9a-f]{64}: applied and committed/);
    // Index, amd64 manifest, config, then both layer blobs (full download: overlayfs takes nothing remotely).
    expect(requestsSince(reg, from).sort()).toEqual(
      [
        'GET manifests/latest',
        `GET manifests/${amd64.manifest.digest}`,
        `GET blobs/${amd64.config.digest}`,
        `GET blobs/${amd64.layers[0]!.digest}`,
        `GET blobs/${amd64.layers[1]!.digest}`,
      ].sort(),
    );

    const run = await c.ctr(['run', '--rm', '--snapshotter', 'overlayfs', ref, 'c1', 'echo', 'hi']);
    expect(run.stdout).toBe('hi\n');
    const motd = await c.ctr(['run', '--rm', '--snapshotter', 'overlayfs', ref, 'c2', 'cat', '/etc/motd']);
    expect(motd.stdout).toBe('second layer\n');

    const images = (await c.ctr(['images', 'ls', '-q'])).stdout.trim().split('\n');
    expect(images).toEqual([ref]);
  });

  it('labels content as containerd does, so a synchronous GC keeps the image', async () => {
    const conn = new ContainerdConnection({ address: c.socket });
    try {
      // A lease deleted with sync=true runs containerd's GC before it answers.
      await conn.call('leases', 'Create', { id: 'gc-now' });
      await conn.call('leases', 'Delete', { id: 'gc-now', sync: true });
    } finally {
      conn.close();
    }
    const content = (await c.ctr(['content', 'ls'])).stdout;
    const labelsOf = (digest: string) => content.split('\n').find((l) => l.startsWith(digest))?.split(/\s+/).at(-1) ?? '';
    const index = buildIndex([amd64, arm64]);
    const host = reg.host.split(':')[0];
    expect(labelsOf(index.digest)).toContain(`containerd.io/gc.ref.content.m.0=${amd64.manifest.digest}`);
    expect(labelsOf(index.digest)).toContain(`containerd.io/gc.ref.content.m.1=${arm64.manifest.digest}`);
    expect(labelsOf(amd64.manifest.digest)).toContain(`containerd.io/gc.ref.content.config=${amd64.config.digest}`);
    expect(labelsOf(amd64.manifest.digest)).toContain(`containerd.io/gc.ref.content.l.1=${amd64.layers[1]!.digest}`);
    expect(labelsOf(amd64.config.digest)).toMatch(/containerd\.io\/gc\.ref\.snapshot\.overlayfs=sha256:[0-9a-f]{64}/);
    expect(labelsOf(amd64.layers[0]!.digest)).toContain(`containerd.io/uncompressed=${amd64.diffIds[0]}`);
    for (const d of [index, amd64.manifest, amd64.config, ...amd64.layers]) {
      expect(labelsOf(d.digest)).toContain(`containerd.io/distribution.source.${host}=demo/busybox`);
    }
    // The arm64 manifest was never fetched.
    expect(labelsOf(arm64.manifest.digest)).toBe('');
    const snaps = (await c.ctr(['snapshots', '--snapshotter', 'overlayfs', 'ls'])).stdout;
    expect(snaps.trim().split('\n')).toHaveLength(3); // header + two committed layers
    const run = await c.ctr(['run', '--rm', '--snapshotter', 'overlayfs', ref, 'c3', 'echo', 'still here']);
    expect(run.stdout).toBe('still here\n');
    // No lease of ours is left behind.
    expect((await c.ctr(['leases', 'ls', '-q'])).stdout.trim()).toBe('');
  });

  it('pulls again without writing content or fetching a layer blob', () => {
    const from = logSize(reg);
    const r = rpull('--plain-http', '--snapshotter', 'overlayfs', ref);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('in content store already');
    expect(r.stderr).toMatch(/layer 2\/2 .*already unpacked/);
    expect(r.stderr).toContain(`image ${ref} updated`);
    const reqs = requestsSince(reg, from);
    expect(reqs.filter((q) => q.includes(amd64.layers[0]!.digest) || q.includes(amd64.layers[1]!.digest))).toEqual([]);
  });

  it('pulls another platform by digest into a namespace with --platform', async () => {
    const index = buildIndex([amd64, arm64]);
    const byDigest = `${reg.host}/demo/busybox@${index.digest}`;
    const r = rpull('--plain-http', '--snapshotter', 'overlayfs', '-n', 'other', '--platform', 'linux/arm64', '--label', 'team=obd', byDigest);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('layer 1/1');
    const images = (await c.ctr(['images', 'ls'], { namespace: 'other' })).stdout;
    expect(images).toContain(byDigest);
    expect(images).toContain('team=obd');
    const snaps = (await c.ctr(['snapshots', '--snapshotter', 'overlayfs', 'ls'], { namespace: 'other' })).stdout;
    // A one-layer image's chainID is its diffID.
    expect(snaps).toContain(arm64.diffIds[0]);
  });

  it('gives each layer snapshot its inherited annotations, image-ref and download-remote-blob', async () => {
    const img = annotated(busyboxImage(), (i) => ({
      'containerd.io/snapshot/overlaybd/blob-digest': `sha256:${String(i).repeat(64)}`,
      'containerd.io/snapshot/overlaybd/blob-size': '4096',
      'org.opencontainers.image.title': 'not inherited',
    }));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-rpull-annotated-'));
    try {
      writeOciLayout(dir, { v1: img });
      await skopeoCopy(dir, 'v1', `${reg.host}/demo/annotated:v1`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const aref = `${reg.host}/demo/annotated:v1`;
    const r = rpull('--plain-http', '--snapshotter', 'overlayfs', '-n', 'labels', '--download-blobs', aref);
    expect(r.code).toBe(0);
    // The same layers as busybox's, in another namespace: the snapshots are this namespace's own.
    const chain1 = img.diffIds[0]!;
    const info = JSON.parse((await c.ctr(['snapshots', '--snapshotter', 'overlayfs', 'info', chain1], { namespace: 'labels' })).stdout) as {
      Labels: Record<string, string>;
    };
    expect(info.Labels).toMatchObject({
      'containerd.io/snapshot.ref': chain1,
      'containerd.io/snapshot/image-ref': aref,
      'containerd.io/snapshot/overlaybd/download-remote-blob': 'download',
      'containerd.io/snapshot/overlaybd/blob-digest': `sha256:${'0'.repeat(64)}`,
      'containerd.io/snapshot/overlaybd/blob-size': '4096',
    });
    expect(info.Labels['org.opencontainers.image.title']).toBeUndefined();
    const run = await c.ctr(['run', '--rm', '--snapshotter', 'overlayfs', aref, 'c4', 'cat', '/etc/motd'], { namespace: 'labels' });
    expect(run.stdout).toBe('second layer\n');
  });

  it('pulls a name that only a --hosts-dir hosts.toml reaches, and names a bad hosts.toml', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-rpull-hosts-'));
    try {
      const hostsToml = path.join(dir, 'registry.obd.test', 'hosts.toml');
      fs.mkdirSync(path.dirname(hostsToml));
      fs.writeFileSync(hostsToml, `server = "http://${reg.host}"\n`);
      const name = 'registry.obd.test/demo/busybox:latest';
      const from = logSize(reg);
      const r = rpull('--hosts-dir', dir, '--snapshotter', 'overlayfs', '-n', 'hosts', name);
      expect(r.code, r.stderr).toBe(0);
      expect((await c.ctr(['images', 'ls', '-q'], { namespace: 'hosts' })).stdout.trim()).toBe(name);
      // The server is not the registry the name gives, so it is told that name, as containerd does.
      expect(requestsSince(reg, from)).toContain('GET manifests/latest?ns=registry.obd.test');

      fs.writeFileSync(hostsToml, `server = "http://${reg.host}"\ncapabilities = ["pull", "fetch"]\n`);
      const bad = rpull('--hosts-dir', dir, '--snapshotter', 'overlayfs', '-n', 'hosts', name);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain(`CONFIG_INVALID: ${hostsToml}: capabilities`);
      expect(bad.stderr).toContain('unknown capability "fetch"');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails with the registry error for an unknown tag or repository, writing nothing', async () => {
    for (const bad of [`${reg.host}/demo/busybox:nope`, `${reg.host}/no/such:latest`]) {
      const r = rpull('--plain-http', '--snapshotter', 'overlayfs', bad);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^overlaybd rpull: REGISTRY_NOT_FOUND: .*404/m);
      expect(r.stderr).toContain(bad.slice(bad.indexOf('/') + 1));
    }
    const images = (await c.ctr(['images', 'ls', '-q'])).stdout.trim().split('\n');
    expect(images).toEqual([ref]);
  });

  it('rejects a malformed reference and a missing one', () => {
    const r = rpull('--plain-http', 'UPPER/Case:x');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CONFIG_INVALID: invalid image reference "UPPER\/Case:x"/);
    const u = rpull();
    expect(u.code).toBe(2);
    expect(u.stderr).toContain('an image reference is required');
  });

  it('names the socket when containerd is not running', () => {
    const sock = path.join(os.tmpdir(), `obd-no-containerd-${process.pid}.sock`);
    const r = runTool('overlaybd', ['rpull', '--plain-http', '--address', sock, '--snapshotter', 'overlayfs', ref]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('CONTAINERD_UNREACHABLE');
    expect(r.stderr).toContain(`containerd at ${sock} is not reachable`);
  });

  it('names the snapshotter that is not loaded, before writing anything', async () => {
    const before = (await c.ctr(['content', 'ls', '-q'], { namespace: 'fresh' })).stdout;
    const r = rpull('--plain-http', '--snapshotter', 'nope', '-n', 'fresh', ref);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CONTAINERD_ERROR: containerd snapshots\.Stat .*snapshotter not loaded: nope/);
    expect(r.stderr).toContain('snapshotter "nope" is not loaded');
    expect((await c.ctr(['content', 'ls', '-q'], { namespace: 'fresh' })).stdout).toBe(before);
    expect((await c.ctr(['images', 'ls', '-q'], { namespace: 'fresh' })).stdout.trim()).toBe('');
  });
});
