/**
 * The ublk frontend in the 6.12 qemu guest (ublk_drv), one boot running
 * test/guest/ublk.sh against one device service: (a) a converted
 * bookworm image attached over the control socket, its
 * ext4 mounted read-only, chroot, the tree equal to the source tar; (b) fio
 * crc32c-verified writes, commit of the upper, fio --verify_only of the
 * committed layer; (c) SIGKILL of the service under a verifying read/write
 * workload, restart, the device taken over and fio ending without errors,
 * while a mounted ext4 on another device keeps working through it; (e) the
 * live snapshot API sealing an upper under a device; (f) a remote image
 * whose registry stops failing reads with EIO rather than hanging; (d)
 * attach/detach in a loop leaving no device, fd or thread behind.
 * Images, configs and the expected tree are made on the host first.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLayer } from '../lib/layer.js';
import { mergeLayers } from './helpers/convertor-tree.js';
import { prepareGuestRemoteImage } from './helpers/guest-registry.js';
import { snapshotOutcome, writeSnapshotData } from './helpers/guest-snapshot.js';
import { compileForGuest, runInGuest } from './helpers/qemu-guest.js';
import { localBookworm } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

const GiB = 1024 ** 3;
let tmp: ReturnType<typeof tempDir>;
let want: string[];
let f: Record<string, string> = {};
let out = '';
let guestMs = 0;

const listing = (text: string) => text.split('\n').filter((l) => l);

function fields(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.split('\n').flatMap((l) => (/^\w+=/.test(l) ? [[l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]] : [])));
}

// OBD_GUEST_LOOP_S lengthens the guest's attach/detach loop (a soak run): more time for it.
const loopMs = Number(process.env.OBD_GUEST_LOOP_S ?? 0) * 1000;

beforeAll(async () => {
  tmp = tempDir('obd-ublk-');
  const sh = tmp.dir;
  const bw = await localBookworm('lz4');
  // The guest's /tmp is its own tmpfs: the script copies the layer and the
  // uppers made here from the share to /tmp/obd-up, where the configs point.
  const up = '/tmp/obd-up';
  const layer = `${up}/layer0`;
  fs.copyFileSync(bw.layers[0]!, path.join(sh, 'layer0'));
  const upper = async (name: string) => {
    await createLayer({ data: path.join(sh, `${name}.data`), index: path.join(sh, `${name}.index`), virtualSize: 2 * GiB });
    return { data: `${up}/${name}.data`, index: `${up}/${name}.index` };
  };
  const config = (name: string, c: object) => fs.writeFileSync(path.join(sh, `${name}.json`), JSON.stringify(c));
  config('ro', { lowers: [{ file: layer }] });
  config('rw', { lowers: [{ file: layer }], upper: await upper('upper') });
  config('committed', { lowers: [{ file: layer }, { file: `${up}/committed.lsmt` }], upper: await upper('upper2') });
  config('kill', { lowers: [{ file: layer }], upper: await upper('upper3') });
  config('mount', { lowers: [{ file: layer }], upper: await upper('upper4') });
  config('snap', { lowers: [{ file: layer }], upper: await upper('upper5') });
  config('snap-next', { lowers: [{ file: layer }, { file: `${up}/upper5.data` }], upper: await upper('upper6') });
  writeSnapshotData(sh);
  await prepareGuestRemoteImage(sh, '/tmp/remote');
  config('overlaybd', { cacheConfig: { cacheDir: path.join(sh, 'cache') }, enableAudit: false, controlSocket: '/run/obd/ctl.sock' });
  const expected = path.join(sh, 'expected');
  mergeLayers([bw.tar], expected, path.join(sh, 'scratch'));
  want = listing(execFileSync('bash', ['-c', `. test/guest/tree-list.sh && tree_list "${expected}"`], { encoding: 'utf8', maxBuffer: 1 << 28 }));
  fs.rmSync(expected, { recursive: true, force: true });
  fs.rmSync(path.join(sh, 'scratch'), { recursive: true, force: true });
  compileForGuest();
  const script = fs.readFileSync(path.resolve('test/guest/ublk.sh'), 'utf8');
  const r = await runInGuest({ kernel: '6.12', script, timeoutMs: 1_200_000 + loopMs, shareDir: sh });
  guestMs = r.ms;
  out = r.stdout;
  f = fields(r.stdout);
  console.log(`ublk guest: ${r.ms} ms wall; fio write ${f.rw_fio_bw}, verify read ${f.verify_fio_bw}; ` +
    `${f.loop_n} attach/detach cycles in ${f.loop_ms} ms; service start ${f.svc1_start_ms}/${f.svc2_start_ms} ms`);
}, 1_800_000 + loopMs);

afterAll(() => tmp?.cleanup());

describe('ublk devices (6.12 guest)', () => {
  it('ran the guest script to its end', () => {
    expect(guestMs).toBeGreaterThan(0);
    expect(f.svc1, out).toBe('ok');
    expect(f.svc_exit, out).toBe('0');
  });

  it('attaches bookworm read-only: ext4 mounts, chroot works, the tree equals the tar', () => {
    expect(f.ro_dev, out).toMatch(/^\/dev\/ublkb\d+$/);
    expect(f.ro_flag).toBe('1');
    expect(f.ro_size).toBe(String(2 * GiB));
    expect(f.ro_list).toBe('ublk');
    expect(f.ro_mount).toBe('ok');
    expect(f.ro_chroot).toMatch(/^12\.\d+$/);
    expect(f.ro_tree).toBe('ok');
    const got = listing(fs.readFileSync(path.join(tmp.dir, 'tree.txt'), 'utf8'));
    expect(got.length).toBeGreaterThan(1000);
    const missing = want.filter((l) => !got.includes(l));
    const extra = got.filter((l) => !want.includes(l));
    expect({ missing: missing.slice(0, 20), extra: extra.slice(0, 20) }).toEqual({ missing: [], extra: [] });
    // Mounted: detach refused; unmounted: the device is gone.
    expect(f.ro_busy).toBe('EBUSY');
    expect(f.ro_detach).toBe('true');
    expect(f.ro_gone).toBe('0');
  });

  it('takes a fio verify workload; the committed upper verifies with fio --verify_only', () => {
    expect(f.rw_dev, out).toMatch(/^\/dev\/ublkb\d+$/);
    expect(f.rw_flag).toBe('0');
    expect([f.rw_fio, f.rw_fio_err], out).toEqual(['0', 'err=0']);
    expect(f.rw_discard).toBe('ok');
    expect(f.rw_detach).toBe('true');
    expect(f.commit, out).toBe('0');
    expect(f.verify_dev).toMatch(/^\/dev\/ublkb\d+$/);
    expect([f.verify_fio, f.verify_fio_err], out).toEqual(['0', 'err=0']);
    expect(f.verify_detach).toBe('true');
  });

  it('survives SIGKILL of the service under fio: the restarted service takes the device over', () => {
    expect(f.kill_dev, out).toMatch(/^\/dev\/ublkb\d+$/);
    expect(f.kill_fio_running, out).toBe('yes');
    expect(f.kill_dev_kept).toBe('yes');
    expect(f.svc2, out).toBe('ok');
    expect(f.kill_list?.trim().split(' ')).toEqual([f.kill_dev, f.mount_dev].sort());
    expect([f.kill_fio, f.kill_fio_err], out).toEqual(['0', 'err=0']);
    expect(f.kill_io_errors).toBe('0');
    expect(f.kill_detach).toBe('true');
  });

  it('keeps a mounted ext4 working across the restart: flushed data read back, new data written, fsck clean', () => {
    expect(f.mount_dev, out).toMatch(/^\/dev\/ublkb\d+$/);
    expect([f.mount_ok, f.mount_before], out).toEqual(['ok', 'ok']);
    expect([f.mount_after, f.mount_write, f.mount_umount], out).toEqual(['ok', 'ok', 'ok']);
    expect(f.mount_fsck, fs.readFileSync(path.join(tmp.dir, 'fsck-kill.log'), 'utf8')).toBe('0');
    expect(f.mount_detach).toBe('true');
  });

  it('takes a live snapshot (§6.6): the sealed upper holds the writes before it, the new upper those after', async () => {
    expect(f.snap_dev, out).toMatch(/^\/dev\/ublkb\d+$/);
    expect([f.snap_write_a, f.snap_api, f.snap_write_b], out).toEqual(['ok', '0', 'ok']);
    const p = (name: string) => path.join(tmp.dir, name);
    const got = await snapshotOutcome(tmp.dir, p('layer0'), p('upper5.data'), { data: p('upper6.data'), index: p('upper6.index') });
    expect(got).toEqual({ deviceSha: f.snap_read, sealedHoldsA: true, freshHoldsAB: true });
    expect(f.snap_next_left).toBe('no');
    expect(f.snap_detach).toBe('true');
    // The device's config now names the new upper, as a restarted service would attach it.
    const config = JSON.parse(fs.readFileSync(path.join(tmp.dir, 'snap.json'), 'utf8')) as { upper: { data: string } };
    expect(config.upper.data).toBe('/tmp/obd-up/upper6.data');
  });

  it('fails reads of a remote image with EIO once its registry is gone, and still detaches', () => {
    expect(f.remote_registry, out).toBe('200');
    expect(f.remote_dev).toMatch(/^\/dev\/ublkb\d+$/);
    expect(f.remote_read_before).toBe('ok');
    console.log(`unreachable registry: dd failed after ${f.remote_dd_s} s`);
    expect(f.remote_dd_rc).toBe('1'); // dd's failure, not timeout's 124
    expect(f.remote_dd_eio).toBe('1');
    expect(f.remote_gone).toBe('yes');
  });

  it('attaches and detaches in a loop leaving no device, fd or thread behind', () => {
    const n = Number(f.loop_n);
    expect(n, out).toBeGreaterThanOrEqual(10); // 200 do not fit in the guest's time: ~2.5 s a cycle under TCG
    expect(f.loop_fails).toBe('0');
    const [before, after] = (f.loop_counts ?? '').split(' ');
    expect(after, out).toBe(before);
    expect(f.loop_left).toBe('0');
    expect(f.loop_list).toBe('[]');
    // SIGTERM left nothing recorded for a restart.
    expect(f.state).toBe('{"version":1,"devices":[]}');
  });
});
