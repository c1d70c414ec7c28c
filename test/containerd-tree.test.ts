/**
 * The same tree as containerd: a real multi-layer image (mmdebstrap base,
 * a umoci layer, a buildah layer, a GNU tar --format=posix layer:
 * helpers/layered-image) is
 * pushed to a local registry, pulled and unpacked by containerd 1.6 with
 * its default overlayfs snapshotter and mounted as a view, and converted by
 * our convertor and mounted from the converted layers. The two trees must
 * be equal file by file: type, mode, owner, size, content, symlink target,
 * device numbers, hard-link groups, xattrs of every namespace, mtime to the
 * nanosecond. Only the mtimes containerd stamps itself at unpack time are
 * left out (directories no header of their last layer names, see
 * docs/decisions.md). Needs root, the Debian mirror (once a day), umoci,
 * buildah and setcap.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convert } from '../lib/convertor/index.js';
import { openDedupStore, type DedupStore } from '../lib/convertor/db/index.js';
import { silentLogger } from '../lib/log.js';
import { RegistryClient } from '../lib/registry/index.js';
import { startContainerd, type TestContainerd } from './helpers/containerd.js';
import { mountStack, type MountedDevice } from './helpers/convertor-tree.js';
import { diffTrees, walkTree, type TreeView } from './helpers/ext4.js';
import { buildLayeredImage, type LayeredImage } from './helpers/layered-image.js';
import { skopeoCopy, startRegistry, type TestRegistry } from './helpers/registry.js';

let work = '';
let image: LayeredImage;
let reg: TestRegistry;
let cd: TestContainerd;
let store: DedupStore;
let ctrMount = '';
let dev: MountedDevice | undefined;
let theirs: TreeView;
let ours: TreeView;
let unpackStartNs = 0n;

const client = () => new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });

/** containerd's tree: pulled, unpacked by the overlayfs snapshotter, mounted as a read-only view. */
async function containerdTree(ref: string): Promise<TreeView> {
  unpackStartNs = BigInt(Date.now()) * 1_000_000n;
  await cd.ctr(['images', 'pull', '--hosts-dir', cd.hostsDir, ref], { timeoutMs: 300_000 });
  ctrMount = path.join(work, 'ctr-mount');
  fs.mkdirSync(ctrMount);
  await cd.ctr(['images', 'mount', ref, ctrMount]);
  return walkTree(ctrMount);
}

/** Our tree: the image converted, its layers fetched and mounted as one device. */
async function convertedTree(repo: string): Promise<TreeView> {
  const c = client();
  try {
    await convert(
      { repository: `${reg.host}/${repo}`, inputTag: 'src', overlaybdTag: 'obd', vsizeGB: 2, workDir: path.join(work, 'conv') },
      { client: c, store, logger: silentLogger },
    );
    const { bytes } = await c.getManifest(`${reg.host}/${repo}:obd`);
    const layers = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers;
    expect(layers).toHaveLength(image.layers.length);
    const files: string[] = [];
    for (const [i, l] of layers.entries()) {
      const f = path.join(work, `obd-layer-${i}`);
      await c.fetchBlobToFile({ registry: reg.host, repository: repo }, l, f);
      files.push(f);
    }
    dev = await mountStack(files, path.join(work, 'dev'));
    return walkTree(dev.dir);
  } finally {
    c.close();
  }
}

/** Directories whose mtime containerd set at unpack time: named by no header of their last layer. */
function stampedDirs(t: TreeView): string[] {
  return Object.entries(t.tree)
    .filter(([, n]) => n.type === 'dir' && BigInt(n.mtime ?? 0) >= unpackStartNs)
    .map(([p]) => p);
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-containerd-tree-'));
  image = await buildLayeredImage(work);
  reg = await startRegistry({ mode: 'plain' });
  await skopeoCopy(image.layout, image.tag, `${reg.host}/layered:src`);
  cd = await startContainerd({ plainHttpRegistries: [reg.host] });
  store = await openDedupStore({ dbType: 'sqlite', dbStr: path.join(work, 'dedup.db') });
  theirs = await containerdTree(`${reg.host}/layered:src`);
  ours = await convertedTree('layered');
}, 900_000);

afterAll(async () => {
  dev?.close();
  if (ctrMount && cd) await cd.ctr(['images', 'unmount', '--rm', ctrMount]).catch(() => {});
  await cd?.stop();
  await store?.close();
  await reg?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('a umoci + buildah + GNU tar image over bookworm', () => {
  it('gives the tree containerd unpacks, file by file', () => {
    expect(Object.keys(theirs.tree).length).toBeGreaterThan(5000);
    const stamped = stampedDirs(theirs);
    // Exactly the root and the parents of the GNU tar layer's entries, which
    // that layer does not name.
    expect(stamped).toEqual(['', 'etc', 'opt', 'usr', 'usr/bin', 'usr/local', 'usr/local/bin']);
    expect(diffTrees(theirs, ours, { skipMtime: new Set(stamped), names: ['containerd', 'ours'] })).toEqual([]);
  });

  it('holds what each layer meant', () => {
    const t = ours.tree;
    // Whiteouts, type changes, the opaque directory.
    expect(t['etc/issue.net']).toBeUndefined();
    expect(t['etc/host.conf']).toBeUndefined();
    expect(t['usr/share/doc/bash']).toBeUndefined();
    expect(t['etc/debian_version']?.type).toBe('file');
    expect(t['etc/skel']).toMatchObject({ type: 'symlink', link: '/usr/share/base-files' });
    expect(t['etc/motd']).toBeUndefined();
    expect(t['usr/share/doc/apt']?.type).toBe('file');
    expect(Object.keys(t).filter((p) => p.startsWith('usr/share/base-files/'))).toEqual(['usr/share/base-files/only']);
    expect(t['etc/debian_version/inside']).toBeUndefined();
    expect(Object.keys(t).filter((p) => p.startsWith('opt/obd/'))).toEqual(['opt/obd/new']);
    // Directories given again carry only the new header's xattrs.
    expect(t['etc/apt']!.xattrs).toEqual({ 'user.other': Buffer.from('three').toString('hex') });
    expect(t['opt/obd2']!.xattrs).toEqual({});
    expect(t['opt/obd2']!.mode).toBe(0o750);
    // Capabilities from the umoci layer; the re-given file loses its own to
    // the chown of its new hard link's header, as in containerd.
    expect(Object.keys(t['usr/local/bin/captrue']!.xattrs)).toEqual(['security.capability']);
    expect(t['usr/bin/tar']!.xattrs).toEqual({});
    expect(t['usr/bin/tar']!.mode).toBe(0o750);
    expect(ours.links).toContainEqual(['usr/bin/tar', 'usr/local/bin/tarlink']);
    expect(ours.links).toContainEqual(['usr/bin/dpkg', 'usr/local/bin/dpkg-hardlink']);
    // mtimes: nanoseconds, past 2038, before 1970 clamped to the epoch as containerd does.
    expect(t['times/subsec']!.mtime).toBe('1620284889123456789');
    expect(t['times/y2040']!.mtime).toBe('2211854706500000000');
    expect(t['times/pre1970']!.mtime).toBe('0');
    expect(t['times/olddir']!.mtime).toBe('0');
    expect(t['times']!.mtime).toBe('1735689600500000000');
  });
});
