/**
 * The scale image of issue 11: ≥ 2 GB uncompressed in 8 layers, cached
 * under /var/cache/overlaybd-test/scale-<key> (key: package sets, builder
 * version and the date, as bookworm.ts does):
 *   0-5  one mmdebstrap run, a layer per apt stage (minbase, then large
 *        --include sets), each the diff of the rootfs against the stage
 *        before (scale_layers.py, from the mmdebstrap hooks)
 *   6    synthetic, by GNU tar: one directory of 100k files and a 6 GiB
 *        sparse file (pax 1.0 sparse entry)
 *   7    deletions: whiteouts for half of the 100k files and for package
 *        directories, an opaque directory
 * Layers are plain tars (the reference the test reads) and gzip blobs; the
 * image can be pushed to a registry by blob files, never read whole.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from '../../lib/registry/index.js';
import { debianMirror } from './bookworm.js';
import { ROOT } from './vectors.js';

const run = promisify(execFile);

export const SCALE_CACHE = '/var/cache/overlaybd-test';

/** apt stages after minbase: each a layer of ≥ ~250 MB. */
export const SCALE_STAGES: readonly string[][] = [
  ['build-essential', 'gdb'],
  ['python3-scipy', 'python3-pandas', 'python3-matplotlib'],
  ['openjdk-17-jdk-headless'],
  ['golang-1.19-go', 'golang-1.19-src'],
  ['rustc', 'cargo', 'libstd-rust-dev', 'clang-14', 'llvm-14'],
];

/** Files in the big directory of the synthetic layer; the deletion layer removes the even ones. */
export const BIG_DIR_FILES = 100_000;
export const SPARSE_SIZE = 6 * 2 ** 30;
const BUILDER_VERSION = 1;
const MTIME = '@1700000000';

export interface LayerFiles {
  tar: string;
  gz: string;
  diffId: string;
  digest: string;
  size: number;
  tarBytes: number;
}

export interface ScaleImage {
  dir: string;
  layers: LayerFiles[];
  config: { digest: string; size: number; bytes: Buffer };
  manifest: { digest: string; bytes: Buffer };
  tarBytes: number;
}

function stamp(): string {
  return new Date().toISOString().slice(0, 10).replace(/-/g, '');
}

function sha256Hex(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return 'sha256:' + h.digest('hex');
}

export function scaleKey(): string {
  return sha256Hex(JSON.stringify({ stages: SCALE_STAGES, v: BUILDER_VERSION, n: BIG_DIR_FILES, s: SPARSE_SIZE, d: stamp() })).slice(0, 16);
}

/** Layers 0..5: one mmdebstrap run whose hooks write a diff tar after each stage. */
async function buildDebianLayers(tmp: string): Promise<void> {
  const script = path.join(ROOT, 'test/helpers/scale_layers.py');
  const state = path.join(tmp, 'state.json');
  const diff = (i: number) => `python3 ${script} diff "$1" ${state} ${path.join(tmp, `layer${i}.tar`)}`;
  const hooks = [`--customize-hook=${diff(0)}`];
  SCALE_STAGES.forEach((pkgs, i) => {
    const install = `DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${pkgs.join(' ')} >/dev/null && apt-get clean`;
    hooks.push(`--customize-hook=chroot "$1" sh -c '${install}'`, `--customize-hook=${diff(i + 1)}`);
  });
  const root = path.join(tmp, 'root');
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(state, { force: true });
  try {
    await run('mmdebstrap', ['--variant=minbase', '--mode=root', '--format=directory', '--quiet', ...hooks, 'bookworm', root, debianMirror()], {
      timeout: 3_600_000,
      maxBuffer: 64 << 20,
    });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(state, { force: true });
  }
}

/** Layer 6: a 100k-file directory and a 6 GiB sparse file with a few data extents. */
async function buildSyntheticLayer(tmp: string, i: number): Promise<void> {
  const stage = path.join(tmp, 'synthetic');
  const big = path.join(stage, 'srv/big');
  fs.mkdirSync(big, { recursive: true });
  for (let n = 0; n < BIG_DIR_FILES; n++) fs.writeFileSync(path.join(big, `f${String(n).padStart(6, '0')}`), `file ${n}\n`.repeat(1 + (n % 7)));
  fs.mkdirSync(path.join(stage, 'srv/disk'));
  const fd = fs.openSync(path.join(stage, 'srv/disk/sparse.img'), 'w');
  try {
    fs.ftruncateSync(fd, SPARSE_SIZE);
    for (const [off, fill] of [[0, 1], [2 ** 30 + 12345, 2], [3 * 2 ** 30, 3], [SPARSE_SIZE - 4096, 4]] as const) {
      fs.writeSync(fd, Buffer.alloc(65536, fill), 0, Math.min(65536, SPARSE_SIZE - off), off);
    }
  } finally {
    fs.closeSync(fd);
  }
  try {
    await run('tar', ['--create', '--sparse', '--format=posix', '--sort=name', '--numeric-owner', '--owner=0', '--group=0', `--mtime=${MTIME}`,
      '--pax-option=delete=atime,delete=ctime', '-f', path.join(tmp, `layer${i}.part`), '-C', stage, 'srv']);
    fs.renameSync(path.join(tmp, `layer${i}.part`), path.join(tmp, `layer${i}.tar`));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

/** Layer 7: whiteouts (half the big directory, package directories) and an opaque directory. */
async function buildDeletionLayer(tmp: string, i: number): Promise<void> {
  const stage = path.join(tmp, 'deletion');
  const big = path.join(stage, 'srv/big');
  fs.mkdirSync(big, { recursive: true });
  for (let n = 0; n < BIG_DIR_FILES; n += 2) fs.writeFileSync(path.join(big, `.wh.f${String(n).padStart(6, '0')}`), '');
  for (const gone of ['usr/share/doc', 'usr/lib/jvm', 'usr/share/go-1.19/src/cmd']) {
    fs.mkdirSync(path.join(stage, path.dirname(gone)), { recursive: true });
    fs.writeFileSync(path.join(stage, path.dirname(gone), `.wh.${path.basename(gone)}`), '');
  }
  const opaque = path.join(stage, 'usr/share/man');
  fs.mkdirSync(opaque, { recursive: true });
  fs.writeFileSync(path.join(opaque, '.wh..wh..opq'), '');
  fs.writeFileSync(path.join(opaque, 'README'), 'man pages removed by the scale image\n');
  try {
    await run('tar', ['--create', '--format=posix', '--sort=name', '--numeric-owner', '--owner=0', '--group=0', `--mtime=${MTIME}`,
      '--pax-option=delete=atime,delete=ctime', '-f', path.join(tmp, `layer${i}.part`), '-C', stage, 'srv', 'usr']);
    fs.renameSync(path.join(tmp, `layer${i}.part`), path.join(tmp, `layer${i}.tar`));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

async function describeLayers(dir: string): Promise<LayerFiles[]> {
  const out: LayerFiles[] = [];
  for (let i = 0; fs.existsSync(path.join(dir, `layer${i}.tar`)); i++) {
    const tar = path.join(dir, `layer${i}.tar`);
    const gz = `${tar}.gz`;
    if (!fs.existsSync(gz)) {
      await run('sh', ['-c', `gzip -1 -n -c "$1" > "$2.tmp" && mv "$2.tmp" "$2"`, 'sh', tar, gz]);
    }
    out.push({
      tar,
      gz,
      diffId: await sha256File(tar),
      digest: await sha256File(gz),
      size: fs.statSync(gz).size,
      tarBytes: fs.statSync(tar).size,
    });
  }
  return out;
}

/**
 * Builds (or reuses) the scale image's layers; ~15 min the first time
 * (apt downloads ~700 MB), seconds after. Not safe to build from two
 * processes at once: the tests that use it run in one file.
 */
export async function scaleImage(): Promise<ScaleImage> {
  const dir = path.join(SCALE_CACHE, `scale-${scaleKey()}`);
  if (!fs.existsSync(path.join(dir, 'layers.json'))) {
    // Each layer tar appears whole (renamed into place), so a build cut short resumes after its last layer.
    const tmp = `${dir}.tmp`;
    fs.mkdirSync(tmp, { recursive: true });
    const n = SCALE_STAGES.length + 1;
    const has = (i: number) => fs.existsSync(path.join(tmp, `layer${i}.tar`));
    if (!has(n - 1)) await buildDebianLayers(tmp);
    if (!has(n)) await buildSyntheticLayer(tmp, n);
    if (!has(n + 1)) await buildDeletionLayer(tmp, n + 1);
    const layers = await describeLayers(tmp);
    fs.writeFileSync(path.join(tmp, 'layers.json'), JSON.stringify(layers.map((l) => ({ ...l, tar: path.basename(l.tar), gz: path.basename(l.gz) }))));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'layers.json'), 'utf8')) as LayerFiles[];
  const layers = saved.map((l) => ({ ...l, tar: path.join(dir, l.tar), gz: path.join(dir, l.gz) }));
  return { dir, layers, ...imageDocuments(layers), tarBytes: layers.reduce((s, l) => s + l.tarBytes, 0) };
}

/** The image's config and manifest (OCI, gzip layers) over `layers`. */
export function imageDocuments(layers: { diffId: string; digest: string; size: number }[]): Pick<ScaleImage, 'config' | 'manifest'> {
  const configBytes = Buffer.from(
    JSON.stringify({
      created: '2025-05-20T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/bash'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '2025-05-20T00:00:00Z', created_by: 'overlaybd scale test' })),
    }),
  );
  const config = { digest: 'sha256:' + sha256Hex(configBytes), size: configBytes.length, bytes: configBytes };
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  return { config, manifest: { digest: 'sha256:' + sha256Hex(manifestBytes), bytes: manifestBytes } };
}

/** Pushes an image (layer blob files, config, manifest) to `registryHost/repo:tag` over plain HTTP. */
export async function pushImage(
  registryHost: string,
  repo: string,
  tag: string,
  image: Pick<ScaleImage, 'config' | 'manifest'>,
  blobs: { file: string; digest: string; size: number }[],
): Promise<void> {
  const client = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
  const loc = { registry: registryHost, repository: repo };
  try {
    for (const l of blobs) await client.pushBlob(loc, { digest: l.digest, size: l.size }, { file: l.file });
    await client.pushBlob(loc, { digest: image.config.digest, size: image.config.size }, image.config.bytes);
    await client.pushManifest(loc, image.manifest.bytes, 'application/vnd.oci.image.manifest.v1+json', tag);
  } finally {
    await client.close();
  }
}
