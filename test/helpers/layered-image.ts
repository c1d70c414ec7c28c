/**
 * A multi-layer image built the ways real images are, for comparing our
 * rootfs with containerd's: the bookworm minbase layer (mmdebstrap), a umoci
 * layer made by changing the unpacked rootfs (deletions become whiteouts,
 * type changes, a new name for a lower file, capabilities and user.*
 * xattrs), a buildah layer (vfs storage, committed uncompressed: a directory
 * emptied and refilled, a file where a directory was, a changed directory
 * xattr), and a GNU `tar --format=posix` layer made by hand (an opaque
 * directory, directories given again with other xattrs, sub-second,
 * post-2038 and pre-1970 mtimes, a hard link to a re-given lower file).
 * Needs root (umoci keeps owners, setcap, xattrs).
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bookwormLayout } from './bookworm.js';

export interface LayeredImage {
  /** OCI image layout holding the image under `tag`. */
  layout: string;
  tag: string;
  /** The layer tars (uncompressed or gzip), bottom first. */
  layers: string[];
}

const run = (cmd: string, args: string[], cwd?: string): string =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });

function setXattr(file: string, name: string, value: string): void {
  run('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode(), follow_symlinks=False)', file, name, value]);
}

function write(file: string, text: string, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  fs.chmodSync(file, mode);
}

/** The umoci layer: what a build step changing the rootfs gives. */
function changeRootfs(r: string): void {
  fs.rmSync(path.join(r, 'etc/issue.net'));
  fs.rmSync(path.join(r, 'usr/share/doc/bash'), { recursive: true });
  // file -> directory, directory -> symlink
  fs.rmSync(path.join(r, 'etc/debian_version'));
  write(path.join(r, 'etc/debian_version/inside'), 'a file where a file was\n');
  fs.rmSync(path.join(r, 'etc/skel'), { recursive: true });
  fs.symlinkSync('/usr/share/base-files', path.join(r, 'etc/skel'));
  // A second name for a file of the lower layer.
  fs.linkSync(path.join(r, 'usr/bin/dpkg'), path.join(r, 'usr/local/bin/dpkg-hardlink'));
  // Capabilities on a lower file and on a new one.
  run('setcap', ['cap_net_raw+ep', path.join(r, 'usr/bin/tar')]);
  fs.copyFileSync(path.join(r, 'usr/bin/true'), path.join(r, 'usr/local/bin/captrue'));
  fs.chmodSync(path.join(r, 'usr/local/bin/captrue'), 0o755);
  run('setcap', ['cap_net_bind_service,cap_sys_nice=+ep', path.join(r, 'usr/local/bin/captrue')]);
  setXattr(path.join(r, 'etc/motd'), 'user.note', 'from the umoci layer');
  setXattr(path.join(r, 'etc/apt'), 'user.layer', 'two');
  for (const f of ['a', 'b', 'sub/c']) write(path.join(r, 'opt/obd', f), `lower ${f}\n`);
  fs.mkdirSync(path.join(r, 'opt/obd2'));
  write(path.join(r, 'opt/obd2/kept'), 'kept\n');
  setXattr(path.join(r, 'opt/obd2'), 'user.x', 'lower');
  fs.chownSync(path.join(r, 'opt/obd2/kept'), 1000, 1000);
}

/** The buildah layer: a container from the umoci image, changed through its mount, committed. */
function buildahLayer(work: string, layout: string, from: string, tag: string): void {
  const store = path.join(work, 'buildah');
  const buildah = (...args: string[]) =>
    run('buildah', ['--storage-driver', 'vfs', '--root', path.join(store, 'root'), '--runroot', path.join(store, 'run'), ...args]).trim();
  // buildah names the image after the layout's path, which must be lower case.
  const alias = path.join(os.tmpdir(), `obd-layout-${crypto.randomBytes(6).toString('hex')}`);
  fs.symlinkSync(layout, alias);
  try {
    const ctr = buildah('from', '--pull-never', '--quiet', '--name', 'obd-layered', `oci:${alias}:${from}`).split('\n').pop()!;
    const r = buildah('mount', ctr);
    const files = path.join(r, 'usr/share/base-files');
    fs.rmSync(files, { recursive: true });
    write(path.join(files, 'only'), 'the only file left\n');
    fs.rmSync(path.join(r, 'etc/motd'));
    fs.rmSync(path.join(r, 'usr/share/doc/apt'), { recursive: true });
    write(path.join(r, 'usr/share/doc/apt'), 'a file where a directory was\n');
    fs.linkSync(path.join(r, 'usr/local/bin/captrue'), path.join(r, 'usr/local/bin/captrue2'));
    fs.chownSync(path.join(r, 'etc/debian_version/inside'), 1000, 1000);
    setXattr(path.join(r, 'etc/apt'), 'user.layer', 'buildah');
    fs.symlinkSync('../bin/true', path.join(r, 'usr/local/bin/t'));
    buildah('commit', '--quiet', '--format', 'oci', ctr, `oci:${alias}:${tag}`);
    buildah('rm', ctr);
  } finally {
    fs.rmSync(alias, { force: true });
    fs.rmSync(store, { recursive: true, force: true });
  }
}

/** The hand-made GNU tar layer's staging tree and its members, in order. */
function stageTarLayer(s: string, lowerRootfs: string): string[] {
  const members: string[] = [];
  const dir = (p: string, mode = 0o755) => {
    fs.mkdirSync(path.join(s, p), { recursive: true });
    fs.chmodSync(path.join(s, p), mode);
    members.push(p);
  };
  const file = (p: string, text: string, mode = 0o644) => {
    write(path.join(s, p), text, mode);
    members.push(p);
  };
  const touch = (p: string, when: string) => run('touch', ['-h', '-d', when, path.join(s, p)]);
  // Directories given again: other xattrs, and none where the lower had one.
  dir('etc/apt');
  setXattr(path.join(s, 'etc/apt'), 'user.other', 'three');
  touch('etc/apt', '2022-02-02 02:02:02.222222222');
  dir('opt/obd2', 0o750);
  touch('opt/obd2', '2023-03-03 03:03:03');
  // An opaque directory: only what this layer puts there stays.
  dir('opt/obd');
  file('opt/obd/.wh..wh..opq', '');
  file('opt/obd/new', 'upper new\n');
  touch('opt/obd', '2024-04-04 04:04:04.4');
  file('etc/.wh.host.conf', '');
  // directory -> file again
  file('etc/debian_version', '12.99\n');
  // A lower file given again (mode changed, capability kept) and a new hard link to it.
  fs.mkdirSync(path.join(s, 'usr/bin'), { recursive: true });
  fs.mkdirSync(path.join(s, 'usr/local/bin'), { recursive: true });
  run('cp', ['-a', '--preserve=all', path.join(lowerRootfs, 'usr/bin/tar'), path.join(s, 'usr/bin/tar')]);
  fs.chmodSync(path.join(s, 'usr/bin/tar'), 0o750);
  members.push('usr/bin/tar');
  fs.linkSync(path.join(s, 'usr/bin/tar'), path.join(s, 'usr/local/bin/tarlink'));
  members.push('usr/local/bin/tarlink');
  // mtimes: sub-second, past 2038, before 1970 (files and a directory).
  dir('times');
  file('times/subsec', 's');
  touch('times/subsec', '2021-05-06 07:08:09.123456789');
  file('times/y2040', 'f');
  touch('times/y2040', '2040-02-03 04:05:06.5');
  file('times/pre1970', 'p');
  touch('times/pre1970', '1960-01-01 00:00:00.25');
  dir('times/olddir');
  touch('times/olddir', '1969-12-31 23:59:59');
  fs.symlinkSync('subsec', path.join(s, 'times/link'));
  touch('times/link', '2030-01-01 00:00:00.75');
  members.push('times/link');
  touch('times', '2025-01-01 00:00:00.5');
  return members;
}

/** Builds the image into `work` (reusing the cached bookworm tarball). */
export async function buildLayeredImage(work: string): Promise<LayeredImage> {
  const bw = await bookwormLayout();
  const layout = path.join(work, 'layout');
  run('cp', ['-a', bw.layout, layout]);
  const bundle = path.join(work, 'bundle');
  run('umoci', ['unpack', '--image', `${layout}:${bw.tag}`, bundle]);
  const rootfs = path.join(bundle, 'rootfs');
  changeRootfs(rootfs);
  run('umoci', ['repack', '--image', `${layout}:umoci`, bundle]);
  buildahLayer(work, layout, 'umoci', 'buildah');
  const stage = path.join(work, 'stage');
  const members = stageTarLayer(stage, rootfs);
  const tarLayer = path.join(work, 'gnu-posix.tar');
  run('tar', ['-C', stage, '--format=posix', '--xattrs', '--xattrs-include=*', '--numeric-owner', '--no-recursion', '-cf', tarLayer, ...members]);
  run('umoci', ['raw', 'add-layer', '--image', `${layout}:buildah`, '--tag', 'layered', tarLayer]);
  fs.rmSync(bundle, { recursive: true, force: true });
  fs.rmSync(stage, { recursive: true, force: true });
  return { layout, tag: 'layered', layers: layerBlobs(layout, 'layered') };
}

/** The layer blobs of a tagged image in a layout, bottom first. */
function layerBlobs(layout: string, tag: string): string[] {
  const blobPath = (digest: string) => path.join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`no tag ${tag} in ${layout}`);
  const manifest = JSON.parse(fs.readFileSync(blobPath(m.digest), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => blobPath(l.digest));
}
