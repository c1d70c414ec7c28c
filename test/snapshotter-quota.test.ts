/**
 * Rootfs quotas (rootfsQuota, containerd.io/snapshot/disk_quota): the size
 * syntax and config check here; the quotas themselves in the 6.1 guest,
 * whose kernel has ext4 project quotas (this host's kernel has none), on an
 * ext4 made with the project quota feature and mounted prjquota
 * (test/guest/quota.mjs).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSnapshotterConfig } from '../lib/snapshotter/config.js';
import { projectIdOf, QUOTA_MIN_ID, rootfsQuotaOf } from '../lib/snapshotter/quota.js';
import { parseRamBytes } from '../lib/snapshotter/ram-bytes.js';
import { compileForGuest, runInGuest } from './helpers/qemu-guest.js';

describe('quota sizes and config', () => {
  it('reads sizes as go-units RAMInBytes does', () => {
    const cases: [string, number | undefined][] = [
      ['20g', 20 * 2 ** 30],
      ['20G', 20 * 2 ** 30],
      ['20gb', 20 * 2 ** 30],
      ['512MiB', 512 * 2 ** 20],
      ['1.5g', 1.5 * 2 ** 30],
      ['4096', 4096],
      ['100 k', 100 * 1024],
      ['2t', 2 * 2 ** 40],
      ['', undefined],
      ['g', undefined],
      ['-1g', undefined],
      ['1x', undefined],
      ['1gg', undefined],
      ['1.g', undefined],
    ];
    for (const [text, want] of cases) expect(parseRamBytes(text), text).toBe(want);
  });

  it('takes the label over the config, an empty one meaning none', () => {
    const label = 'containerd.io/snapshot/disk_quota';
    expect(rootfsQuotaOf({}, '20g')).toEqual({ text: '20g', from: 'config rootfsQuota' });
    expect(rootfsQuotaOf({ [label]: '1g' }, '20g')).toEqual({ text: '1g', from: `label ${label}` });
    expect(rootfsQuotaOf({ [label]: '' }, '20g')).toBeUndefined();
    expect(rootfsQuotaOf({}, '')).toBeUndefined();
    expect(projectIdOf('7')).toBe(QUOTA_MIN_ID + 7);
  });

  it('names rootfsQuota when the config gives no size', () => {
    expect(() => parseSnapshotterConfig({ root: '/r', address: '/a', rootfsQuota: 'big' }, 'config.json')).toThrow(/config\.json: rootfsQuota: must be a size/);
    expect(() => parseSnapshotterConfig({ root: '/r', address: '/a', rootfsQuota: '0' })).toThrow(/rootfsQuota/);
    expect(parseSnapshotterConfig({ root: '/r', address: '/a', rootfsQuota: '20g' }).rootfsQuota).toBe('20g');
  });
});

describe('rootfs quotas in the 6.1 guest (ext4 prjquota)', () => {
  const share = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-quota-'));
  let f: Record<string, unknown> = {};
  let out = '';
  beforeAll(async () => {
    const lib = path.join(path.dirname(compileForGuest()), '..', 'lib');
    const script = `
img=/tmp/quota.img mnt=/tmp/quota
# The chroot cannot autoload modules: load what the mount needs.
modprobe -a loop ext4 quota_v2
truncate -s 256M $img && mkfs.ext4 -q -O quota,project -E quotatype=prjquota $img && mkdir -p $mnt && mount -o loop,prjquota $img $mnt && echo 'mounted=true'
node test/guest/quota.mjs ${path.relative(process.cwd(), lib)} $mnt/root /tmp/plain-root
umount $mnt && echo 'unmounted=true'
`;
    const r = await runInGuest({ kernel: '6.1', script, timeoutMs: 300_000, shareDir: share });
    out = r.stdout;
    f = Object.fromEntries(
      r.stdout.split('\n').flatMap((l) => {
        const m = /^(\w+)=(.*)$/.exec(l);
        return m ? [[m[1]!, JSON.parse(m[2]!)]] : [];
      }),
    );
    console.log(`quota guest: ${r.ms} ms wall`);
  }, 360_000);
  afterAll(() => fs.rmSync(share, { recursive: true, force: true }));

  it('limits a rootfs to the config quota, under its own project', () => {
    expect(f.mounted, out).toBe(true);
    expect(f.done, out).toBe(true);
    expect(f.a_project).toBeGreaterThan(QUOTA_MIN_ID);
    expect([f.a_first, f.a_over], out).toEqual(['ok', 'EDQUOT']);
  });

  it('takes the disk_quota label over the config, and an empty one as none', () => {
    expect([f.b_first, f.b_over], out).toEqual(['ok', 'EDQUOT']);
    // Its own project: upstream's shared one would have let b's 4m replace a's 1m.
    expect(f.b_project).toBeGreaterThan(QUOTA_MIN_ID);
    expect(f.b_project).not.toBe(f.a_project);
    expect([f.e_project, f.e_write], out).toEqual([0, 'ok']);
  });

  it('limits upper and work of a rootfs over a layer, and leaves the layer alone', () => {
    expect([f.layer_project, f.layer_write], out).toEqual([0, 'ok']);
    const [upper, work] = f.c_projects as number[];
    expect(upper).toBeGreaterThan(QUOTA_MIN_ID);
    expect(work).toBe(upper);
    expect([f.c_over, f.c_sub], out).toEqual(['EDQUOT', 'EDQUOT']);
  });

  it('refuses a bad size or one above the filesystem, leaving no snapshot', () => {
    expect(f.bad_label).toMatchObject({ code: 'EINVAL', message: expect.stringContaining('label containerd.io/snapshot/disk_quota: "lots" is not a size') });
    expect(f.too_big).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/1t \(\d+ bytes\) is more than the \d+ bytes of \/tmp\/quota/) });
    expect(f.keys_after_failures).toEqual(['chain', 'rootfs-a', 'rootfs-b', 'rootfs-c', 'rootfs-e']);
  });

  it('drops the limit with the snapshot', () => {
    expect(f.a_removed_write, out).toBe('ok');
    expect(f.unmounted, out).toBe(true);
  });

  it('fails a rootfs on a filesystem without prjquota, as upstream, and still unpacks layers', () => {
    expect(f.plain).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/config rootfsQuota 1m: mountpoint \/tmp \(tmpfs\) is not mounted with prjquota/) });
    expect(f.plain_layer).toEqual({ ok: 1 });
    expect(f.plain_keys).toEqual(['layer']);
    expect(f.plain_dirs).toBe(1);
  });
});
