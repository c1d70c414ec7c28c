/**
 * A real Debian bookworm minbase image for convertor tests and benches:
 * mmdebstrap (as root) into a tarball cached in os.tmpdir() by date, then a
 * one-layer gzip OCI image layout (also cached) that skopeo can push.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { blob, writeOciLayout, type BuiltImage } from './oci-layout.js';

const run = promisify(execFile);

/** The first `URIs:` of the system's Debian sources (the mirror the machine can reach). */
export function debianMirror(): string {
  const text = fs.readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8');
  const m = /^URIs:\s*(\S+)/m.exec(text);
  if (!m) throw new Error('no URIs: line in /etc/apt/sources.list.d/debian.sources');
  return m[1]!;
}

function stamp(): string {
  return new Date().toISOString().slice(0, 10).replace(/-/g, '');
}

/** Builds (or reuses today's) bookworm minbase tarball; ~17 s the first time. */
export async function bookwormTar(): Promise<string> {
  const file = path.join(os.tmpdir(), `obd-bookworm-minbase-${stamp()}.tar`);
  if (fs.existsSync(file) && fs.statSync(file).isFile()) return file;
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await run('mmdebstrap', ['--variant=minbase', '--mode=root', '--format=tar', '--quiet', 'bookworm', tmp, debianMirror()], {
      timeout: 300_000,
      maxBuffer: 16 << 20,
    });
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return file;
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file)) h.update(c as Buffer);
  return 'sha256:' + h.digest('hex');
}

export interface BookwormImage {
  tar: string;
  layout: string;
  tag: string;
  image: BuiltImage;
}

/** The tarball as a one-layer gzip OCI image in an image layout (cached next to the tarball). */
export async function bookwormLayout(): Promise<BookwormImage> {
  const tar = await bookwormTar();
  const gz = tar + '.gz';
  if (!fs.existsSync(gz)) {
    const tmp = `${gz}.${process.pid}.tmp`;
    await pipeline(fs.createReadStream(tar), zlib.createGzip({ level: 6 }), fs.createWriteStream(tmp));
    fs.renameSync(tmp, gz);
  }
  const layout = `${tar}.oci`;
  const tag = 'bookworm';
  const diffId = await sha256File(tar);
  const layer = blob('application/vnd.oci.image.layer.v1.tar+gzip', fs.readFileSync(gz));
  const config = blob(
    'application/vnd.oci.image.config.v1+json',
    JSON.stringify({
      created: '2025-05-20T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/bash'] },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: '2025-05-20T00:00:00Z', created_by: 'mmdebstrap --variant=minbase bookworm' }],
    }),
  );
  const manifest = blob(
    'application/vnd.oci.image.manifest.v1+json',
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
    }),
  );
  const image: BuiltImage = { manifest, config, layers: [layer], diffIds: [diffId], platform: { architecture: 'amd64', os: 'linux' } };
  if (!fs.existsSync(path.join(layout, 'index.json'))) {
    const tmp = `${layout}.${process.pid}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    writeOciLayout(tmp, { [tag]: image });
    fs.rmSync(layout, { recursive: true, force: true });
    fs.renameSync(tmp, layout);
  }
  return { tar, layout, tag, image };
}
