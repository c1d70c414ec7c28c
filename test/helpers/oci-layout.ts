/**
 * Builds OCI image layouts from in-memory files, for pushing fixtures with
 * skopeo: gzip tar layers, config, manifest, and multi-platform indexes.
 * Everything is deterministic (mtime 0, gzip without a name or time).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { ustarHeader } from '../../lib/ustar.js';

export type TarEntry =
  | { path: string; content: string | Buffer; mode?: number }
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'symlink'; target: string };

/** A ustar archive of the entries, in order. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if ('type' in e && e.type === 'dir') {
      parts.push(ustarHeader({ name: e.path.endsWith('/') ? e.path : e.path + '/', mode: e.mode ?? 0o755, typeflag: '5' }));
    } else if ('type' in e && e.type === 'symlink') {
      parts.push(ustarHeader({ name: e.path, mode: 0o777, typeflag: '2', linkname: e.target }));
    } else if ('content' in e) {
      const data = typeof e.content === 'string' ? Buffer.from(e.content) : e.content;
      parts.push(ustarHeader({ name: e.path, size: data.length, mode: e.mode ?? 0o644, typeflag: '0' }), data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  data: Buffer;
}

export function blob(mediaType: string, data: Buffer | string): Blob {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  return { mediaType, digest: 'sha256:' + crypto.createHash('sha256').update(b).digest('hex'), size: b.length, data: b };
}

export interface ImageSpec {
  layers: TarEntry[][];
  architecture?: string;
  os?: string;
  env?: string[];
  cmd?: string[];
}

export interface BuiltImage {
  manifest: Blob;
  config: Blob;
  layers: Blob[];
  diffIds: string[];
  platform: { architecture: string; os: string };
}

const desc = (b: Blob) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });

export function buildImage(spec: ImageSpec): BuiltImage {
  const architecture = spec.architecture ?? 'amd64';
  const os = spec.os ?? 'linux';
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (const entries of spec.layers) {
    const raw = tar(entries);
    diffIds.push('sha256:' + crypto.createHash('sha256').update(raw).digest('hex'));
    layers.push(blob('application/vnd.oci.image.layer.v1.tar+gzip', zlib.gzipSync(raw, { level: 6 })));
  }
  const config = blob(
    'application/vnd.oci.image.config.v1+json',
    JSON.stringify({
      created: '1970-01-01T00:00:00Z',
      architecture,
      os,
      config: { Env: spec.env ?? ['PATH=/usr/bin:/bin'], Cmd: spec.cmd ?? ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layers.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'overlaybd test fixture' })),
    }),
  );
  const manifest = blob(
    'application/vnd.oci.image.manifest.v1+json',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: desc(config),
      layers: layers.map(desc),
    }),
  );
  return { manifest, config, layers, diffIds, platform: { architecture, os } };
}

export function buildIndex(images: BuiltImage[]): Blob {
  return blob(
    'application/vnd.oci.image.index.v1+json',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: images.map((i) => ({ ...desc(i.manifest), platform: i.platform })),
    }),
  );
}

/**
 * Writes an OCI layout at `dir` whose index.json names each entry by tag
 * (`org.opencontainers.image.ref.name`). An entry is an image or an index
 * over images.
 */
export function writeOciLayout(dir: string, entries: Record<string, BuiltImage | { index: Blob; images: BuiltImage[] }>): void {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const put = (b: Blob) => fs.writeFileSync(path.join(blobs, b.digest.slice('sha256:'.length)), b.data);
  const manifests: unknown[] = [];
  for (const [tag, e] of Object.entries(entries)) {
    const images = 'index' in e ? e.images : [e];
    for (const img of images) {
      put(img.config);
      img.layers.forEach(put);
      put(img.manifest);
    }
    const top = 'index' in e ? e.index : e.manifest;
    put(top);
    manifests.push({ ...desc(top), annotations: { 'org.opencontainers.image.ref.name': tag } });
  }
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
  );
}

/** Two small images (amd64, arm64) with two gzip layers each, and the index over them. */
export function sampleImages(): { single: BuiltImage; index: Blob; platforms: BuiltImage[] } {
  const base: TarEntry[] = [
    { path: 'etc', type: 'dir' },
    { path: 'etc/os-release', content: 'ID=overlaybd-test\n' },
    { path: 'bin', type: 'dir' },
    { path: 'bin/hello', content: '#!/bin/sh\necho hello\n', mode: 0o755 },
  ];
  const mk = (arch: string) =>
    buildImage({
      architecture: arch,
      layers: [
        base,
        [
          { path: 'data', type: 'dir' },
          { path: `data/${arch}.txt`, content: `payload for ${arch}\n`.repeat(50) },
          { path: 'data/link', type: 'symlink', target: `${arch}.txt` },
        ],
      ],
    });
  const amd64 = mk('amd64');
  const arm64 = mk('arm64');
  return { single: amd64, index: buildIndex([amd64, arm64]), platforms: [amd64, arm64] };
}

/** busybox-static with a few applets, and a second layer with /etc/motd: a tiny image that runs. */
export function busyboxImage(): BuiltImage {
  const base: TarEntry[] = [
    { path: 'bin', type: 'dir' },
    { path: 'bin/busybox', content: fs.readFileSync('/bin/busybox'), mode: 0o755 },
    ...['sh', 'echo', 'cat', 'ls'].map((a) => ({ path: `bin/${a}`, type: 'symlink' as const, target: 'busybox' })),
  ];
  const top: TarEntry[] = [
    { path: 'etc', type: 'dir' },
    { path: 'etc/motd', content: 'second layer\n' },
  ];
  return buildImage({ layers: [base, top], env: ['PATH=/bin'], cmd: ['/bin/sh'] });
}
