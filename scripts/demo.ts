/**
 * The main job, end to end on this machine: a real Debian bookworm minbase
 * image (mmdebstrap) is pushed to a local registry (Debian docker-registry on
 * 127.0.0.1), converted to overlaybd by our convertor, inspected, stacked,
 * mounted read-only and run with chroot; a second conversion is a re-tag.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openImage } from '../lib/image.js';
import { inspectLayer } from '../lib/layer.js';
import { bookwormLayout } from '../test/helpers/bookworm.js';
import { skopeoCopy, startRegistry } from '../test/helpers/registry.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'overlaybd-demo-'));
const step = (s: string) => console.log(`\n== ${s}`);
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

const reg = await startRegistry({ mode: 'plain' });
let mnt: string | undefined;
try {
  step('mmdebstrap bookworm minbase -> OCI image -> local registry');
  const img = await bookwormLayout();
  const repo = `${reg.host}/demo/debian`;
  await skopeoCopy(img.layout, img.tag, `${repo}:bookworm`);
  console.log(`pushed ${repo}:bookworm (${img.image.layers.length} gzip layer, ${(img.image.layers[0]!.size / 1e6).toFixed(1)} MB)`);

  step('convertor: OCI -> overlaybd (user space: mkfs, apply, commit -z -t)');
  const convert = () =>
    spawnSync(process.execPath, [path.join(root, 'dist/lib/cli/convertor.js'), '--plain', '-r', repo, '-i', 'bookworm', '--overlaybd', 'bookworm_obd', '--db-str', path.join(work, 'dedup.db'), '-d', path.join(work, 'conv')], { encoding: 'utf8', stdio: ['ignore', 'inherit', 'inherit'] });
  let t0 = Date.now();
  if (convert().status !== 0) throw new Error('convertor failed');
  console.log(`converted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  step('skopeo inspect the result');
  const raw = JSON.parse(sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${repo}:bookworm_obd`]));
  for (const l of raw.layers) console.log(`${l.mediaType} ${l.digest} ${l.size}\n  ${JSON.stringify(l.annotations)}`);

  step('fetch the layers, stack them and check the filesystem');
  sh('skopeo', ['copy', '--src-tls-verify=false', `docker://${repo}:bookworm_obd`, `dir:${path.join(work, 'obd')}`]);
  const lowers = raw.layers.map((l: { digest: string }) => path.join(work, 'obd', l.digest.replace('sha256:', '')));
  const info = await inspectLayer(lowers[0]);
  console.log(`layer 0: tar ${info.tar.wrapped}, ZFile ${info.zfile?.algorithm} ${info.zfile?.blockSize} B blocks, LSMT uuid ${info.trailer?.uuid}, ${info.entries.length} extents`);
  const image = await openImage({ lowers });
  const dev = path.join(work, 'rootfs.img');
  const fd = fs.openSync(dev, 'w');
  await image.dump(fd); // sparse: only mapped extents are written
  fs.closeSync(fd);
  await image.close();
  console.log(sh('e2fsck', ['-fn', dev]).trim().split('\n').pop());

  step('mount read-only and run a command in it');
  mnt = fs.mkdtempSync(path.join(work, 'mnt-'));
  sh('mount', ['-t', 'ext4', '-o', 'ro,loop,noload', dev, mnt]);
  console.log(`chroot: debian_version ${sh('chroot', [mnt, '/bin/cat', '/etc/debian_version']).trim()}; ${sh('chroot', [mnt, '/bin/sh', '-c', 'ls /usr/bin | wc -l']).trim()} programs in /usr/bin`);

  step('convert again: the dedup store makes it a re-tag');
  t0 = Date.now();
  if (convert().status !== 0) throw new Error('second conversion failed');
  console.log(`second conversion in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
} finally {
  if (mnt) spawnSync('umount', [mnt]);
  await reg.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
