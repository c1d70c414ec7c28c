// The rootfs-quota checks of test/snapshotter-quota.test.ts, run inside the
// 6.1 guest (its kernel has ext4 project quotas; the host's has none). The
// snapshotter runs in this process from the compiled lib (argv[2]), its
// root on the prjquota-mounted ext4 at argv[3]; argv[4] is a root on a
// filesystem without prjquota. Every result is a `name=JSON` line.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const [lib, root, plainRoot] = process.argv.slice(2).map((p) => path.resolve(p));
const { Snapshotter } = await import(path.join(lib, 'snapshotter/snapshotter.js'));
const { parseSnapshotterConfig } = await import(path.join(lib, 'snapshotter/config.js'));
const { native } = await import(path.join(lib, 'native.js'));

const out = (k, v) => console.log(`${k}=${JSON.stringify(v)}`);
const MiB = 1 << 20;
/**
 * Appends `bytes` to `file` and syncs, as a container's root would: without
 * CAP_SYS_RESOURCE (containerd's default spec does not grant it), which
 * would let it past the limit. 'ok', or 'EDQUOT' when the quota stops it.
 */
function write(file, bytes) {
  const args = ['--bounding-set', '-sys_resource', '--', 'dd', 'if=/dev/zero', `of=${file}`, 'bs=64k', `count=${bytes / 65536}`,
    'oflag=append', 'conv=notrunc,fsync', 'status=none'];
  const r = spawnSync('setpriv', args, { encoding: 'utf8' });
  if (r.status === 0) return 'ok';
  return /Disk quota exceeded/.test(r.stderr) ? 'EDQUOT' : `exit ${r.status}: ${r.stderr.trim()}`;
}
const option = (m, key) => m.options.find((o) => o.startsWith(`${key}=`))?.slice(key.length + 1);
const attempt = async (f) => {
  try {
    return { ok: await f() };
  } catch (e) {
    return { code: e.code, message: e.message };
  }
};

const s = await Snapshotter.open(parseSnapshotterConfig({ root, address: path.join(root, 'sock'), rootfsQuota: '1m' }));
try {
  // A rootfs without a parent: a bind of fs/, limited by the config's 1m.
  const [a] = await s.prepare('rootfs-a', '', {});
  out('a_project', await native().projectId(a.source));
  out('a_first', write(path.join(a.source, 'f'), 768 << 10));
  out('a_over', write(path.join(a.source, 'g'), MiB));

  // The label overrides the config.
  const [b] = await s.prepare('rootfs-b', '', { 'containerd.io/snapshot/disk_quota': '4m' });
  out('b_project', await native().projectId(b.source));
  out('b_first', write(path.join(b.source, 'f'), 3 * MiB));
  out('b_over', write(path.join(b.source, 'g'), 2 * MiB));

  // An unpacked layer is no rootfs: no quota. A rootfs on it limits upper and work.
  const [l] = await s.prepare('layer', '', { 'containerd.io/snapshot.ref': 'chain' });
  out('layer_project', await native().projectId(l.source));
  out('layer_write', write(path.join(l.source, 'f'), 2 * MiB));
  await s.commit('chain', 'layer', {});
  const [c] = await s.prepare('rootfs-c', 'chain', {});
  const upper = option(c, 'upperdir');
  const work = option(c, 'workdir');
  out('c_projects', [await native().projectId(upper), await native().projectId(work)]);
  out('c_over', write(path.join(upper, 'f'), 2 * MiB));
  out('c_sub', (fs.mkdirSync(path.join(upper, 'd')), write(path.join(upper, 'd', 'f'), 2 * MiB)));

  // An empty label means no quota, as upstream.
  const [e] = await s.prepare('rootfs-e', '', { 'containerd.io/snapshot/disk_quota': '' });
  out('e_project', await native().projectId(e.source));
  out('e_write', write(path.join(e.source, 'f'), 2 * MiB));

  out('bad_label', await attempt(() => s.prepare('rootfs-bad', '', { 'containerd.io/snapshot/disk_quota': 'lots' })));
  out('too_big', await attempt(() => s.prepare('rootfs-big', '', { 'containerd.io/snapshot/disk_quota': '1t' })));
  out('keys_after_failures', (await s.list([])).map((i) => i.name).sort());

  // Removed: the project's limit goes too. A new dir given that project takes more than 1m.
  const project = await native().projectId(a.source);
  await s.remove('rootfs-a');
  const probe = path.join(root, 'probe');
  fs.mkdirSync(probe);
  execFileSync('chattr', ['-p', String(project), '+P', probe]);
  out('a_removed_write', write(path.join(probe, 'f'), 2 * MiB));
} finally {
  s.close();
}

// The same config on a filesystem without prjquota: a rootfs Prepare fails and leaves nothing.
fs.mkdirSync(plainRoot, { recursive: true });
const p = await Snapshotter.open(parseSnapshotterConfig({ root: plainRoot, address: path.join(plainRoot, 'sock'), rootfsQuota: '1m' }));
try {
  out('plain', await attempt(() => p.prepare('rootfs', '', {})));
  out('plain_layer', await attempt(async () => (await p.prepare('layer', '', { 'containerd.io/snapshot.ref': 'x' })).length));
  out('plain_keys', (await p.list([])).map((i) => i.name).sort());
  out('plain_dirs', fs.readdirSync(path.join(plainRoot, 'snapshots')).length);
} finally {
  p.close();
}
out('done', true);
