/**
 * `overlaybd obdconv SRC DST` against a real containerd 1.6: a busybox
 * image (an index with amd64 and arm64) rpulled into overlayfs from a
 * docker-registry is converted in containerd's content store; the new
 * manifest, config and layer blobs are read back with `ctr content get`
 * and checked (annotations, diff_ids, overlaybd inspect), a synchronous GC
 * keeps them, and `ctr run --snapshotter obd DST` (overlaybd-snapshotter
 * and the device service) runs the converted image. Then the errors.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerdConnection } from '../lib/containerd/index.js';
import { chainIds, uuidFromChainId } from '../lib/convertor/index.js';
import type { LayerInspection } from '../lib/layer.js';
import { runTool } from './helpers/cli.js';
import { mountsUnder, type TestContainerd } from './helpers/containerd.js';
import { startObdStack, type ObdStack } from './helpers/obd-stack.js';
import { buildImage, buildIndex, busyboxImage, writeOciLayout, type BuiltImage } from './helpers/oci-layout.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';
import { tempDir } from './helpers/vectors.js';

const P = 'containerd.io/snapshot/overlaybd/';

describe('overlaybd obdconv', () => {
  let tmp: { dir: string; cleanup: () => void };
  let reg: TestRegistry;
  let stack: ObdStack;
  let cd: TestContainerd;
  let amd64: BuiltImage;
  let src: string;
  const dst = 'localhost/demo/busybox:obd';

  const obdconv = (...args: string[]) => runTool('overlaybd', ['obdconv', '--address', cd.socket, ...args]);
  /** A blob of containerd's content store, through `ctr content get`, as bytes. */
  const contentGet = (digest: string) => execFileSync('ctr', ['-a', cd.socket, 'content', 'get', digest], { maxBuffer: 256 << 20 });

  beforeAll(async () => {
    tmp = tempDir('obd-obdconv-');
    reg = await startRegistry({ mode: 'plain' });
    amd64 = busyboxImage();
    const arm64 = buildImage({ architecture: 'arm64', layers: [[{ path: 'arm64.txt', content: 'an arm64 layer\n' }]] });
    const layout = path.join(tmp.dir, 'layout');
    writeOciLayout(layout, { latest: { index: buildIndex([amd64, arm64]), images: [amd64, arm64] } });
    src = `${reg.host}/demo/busybox:latest`;
    await skopeoCopy(layout, 'latest', src);

    stack = await startObdStack({ name: 'obdconv-stack', snapshotter: { autoRemoveDev: true }, containerd: { plainHttpRegistries: [reg.host] } });
    cd = stack.cd!;
    const r = runTool('overlaybd', ['rpull', '--plain-http', '--address', cd.socket, '--snapshotter', 'overlayfs', src]);
    if (r.code !== 0) throw new Error(`rpull failed:\n${r.stderr}`);
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
    await reg?.stop();
    tmp?.cleanup();
  });

  it('converts the image into containerd as upstream lays it out', async () => {
    const r = obdconv(src, dst);
    expect(r.stderr).toMatch(/layer 2\/2 sha256:[0-9a-f]{64}: converted to sha256:[0-9a-f]{64}/);
    expect(r.code).toBe(0);
    const target = r.stdout.trim();
    expect(target).toMatch(/^sha256:[0-9a-f]{64}$/);

    const images = (await cd.ctr(['images', 'ls'])).stdout;
    const row = images.split('\n').find((l) => l.startsWith(dst + ' '));
    expect(row).toContain(target);
    expect(row).toContain('application/vnd.docker.distribution.manifest.v2+json');

    const raw = contentGet(target);
    // Go's MarshalIndent with 3 spaces; the mediaType field last (upstream's struct shadows the embedded one).
    expect(raw.toString('utf8')).toMatch(/^\{\n {3}"schemaVersion": 2,\n {3}"config": \{/);
    const m = JSON.parse(raw.toString('utf8'));
    expect(Object.keys(m)).toEqual(['schemaVersion', 'config', 'layers', 'mediaType']);
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(m.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    expect(m.layers).toHaveLength(2);
    for (const l of m.layers) {
      expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
      expect(l.annotations).toEqual({
        [`${P}blob-digest`]: l.digest,
        [`${P}blob-fs-type`]: 'ext4',
        [`${P}blob-size`]: String(l.size),
        [`${P}version`]: '0.1.0',
      });
    }

    const cfgRaw = contentGet(m.config.digest).toString('utf8');
    expect(cfgRaw).toMatch(/^\{\n {3}"/);
    const cfg = JSON.parse(cfgRaw);
    expect(cfg.rootfs.diff_ids).toEqual(m.layers.map((l: { digest: string }) => l.digest));
    expect(cfg.config.Env).toEqual(['PATH=/bin']);
    const srcCfg = JSON.parse(amd64.config.data.toString('utf8'));
    expect(cfg.architecture).toBe(srcCfg.architecture);

    // Each layer blob is an overlaybd layer: a tar-wrapped lz4 ZFile over an LSMT file whose uuid comes from the chain ID.
    const chains = chainIds(amd64.diffIds);
    const infos: LayerInspection[] = [];
    for (const [i, l] of m.layers.entries()) {
      const file = path.join(tmp.dir, `layer${i}`);
      const bytes = contentGet(l.digest);
      expect(bytes.length).toBe(l.size);
      fs.writeFileSync(file, bytes);
      const ins = runTool('overlaybd', ['inspect', file]);
      expect(ins.code).toBe(0);
      const info = JSON.parse(ins.stdout) as LayerInspection;
      expect(info.tar.wrapped).toBe(true);
      expect(info.zfile).toMatchObject({ algorithm: 'lz4', blockSize: 4096 });
      expect(info.header.virtualSize).toBe(64 * 1024 ** 3);
      expect(info.header.uuid.toLowerCase()).toBe(uuidFromChainId(chains[i]!));
      infos.push(info);
    }
    expect(infos[1]!.header.parentUuid).toBe(infos[0]!.header.uuid);

    // The manifest's GC references, and a synchronous GC keeps everything.
    const conn = new ContainerdConnection({ address: cd.socket });
    try {
      await conn.call('leases', 'Create', { id: 'gc-now' });
      await conn.call('leases', 'Delete', { id: 'gc-now', sync: true });
    } finally {
      conn.close();
    }
    const content = (await cd.ctr(['content', 'ls'])).stdout;
    const labels = content.split('\n').find((l) => l.startsWith(target))?.split(/\s+/).at(-1) ?? '';
    expect(labels).toContain(`containerd.io/gc.ref.content.config=${m.config.digest}`);
    expect(labels).toContain(`containerd.io/gc.ref.content.l.0=${m.layers[0].digest}`);
    expect(labels).toContain(`containerd.io/gc.ref.content.l.1=${m.layers[1].digest}`);
    for (const l of m.layers) expect(contentGet(l.digest).length).toBe(l.size);
    expect((await cd.ctr(['leases', 'ls', '-q'])).stdout.trim()).toBe('');
  }, 300_000);

  it('converts to the same bytes again and updates the image', () => {
    const r1 = obdconv(src, dst);
    const r2 = obdconv('--vsize', '64', '--algorithm', 'zstd', '--bs', '64', src, dst);
    expect(r1.code).toBe(0);
    expect(r2.code).toBe(0);
    expect(r2.stderr).toContain(`image ${dst} updated`);
    expect(r2.stdout).toBe(r1.stdout);
  }, 300_000);

  it('runs the converted image with ctr run --snapshotter obd', async () => {
    const run = await cd.ctr(['run', '--rm', '--snapshotter', 'obd', dst, 'c1', 'cat', '/etc/motd'], { timeoutMs: 300_000 });
    expect(run.stdout).toBe('second layer\n');
    const committed = await stack.snap.list(['kind==committed']);
    expect(committed).toHaveLength(2);
    for (let i = 0; i < 100 && mountsUnder(stack.snap.dir).length > 0; i++) await new Promise((res) => setTimeout(res, 100));
  }, 300_000);

  it('names an unknown source image, a missing blob, and refuses --dbstr and other filesystems', async () => {
    const unknown = obdconv('localhost/nope:1', 'localhost/nope:obd');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('image localhost/nope:1 not found in containerd (namespace default)');

    // A source whose layer blob is gone from the content store.
    await cd.ctr(['content', 'rm', amd64.layers[1]!.digest]);
    const missing = obdconv(src, 'localhost/demo/busybox:obd2');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`layer 1 ${amd64.layers[1]!.digest} is not in containerd's content store (namespace default)`);
    expect((await cd.ctr(['images', 'ls', '-q'])).stdout).not.toContain('obd2');

    const db = obdconv('--dbstr', 'user:pw@tcp(127.0.0.1:3306)/db', src, dst);
    expect(db.code).not.toBe(0);
    expect(db.stderr).toContain('--dbstr: remote mode');
    const xfs = obdconv('--fstype', 'xfs', src, dst);
    expect(xfs.code).not.toBe(0);
    expect(xfs.stderr).toContain('fsType');
    const usage = obdconv(src);
    expect(usage.code).toBe(2);
  }, 120_000);
});
