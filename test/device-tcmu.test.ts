/**
 * The TCMU frontend end to end in the 6.1 qemu guest (target_core_user +
 * tcm_loop), in one boot running test/guest/tcmu.sh: the service serves a
 * converted bookworm image as /dev/sdX (read-only ext4, chroot, the tree
 * file by file against the source tar), a writable device takes fio with
 * verify and re-verifies after a fresh attach (and the committed upper
 * holds the same bytes), a kill -9 of the service under fio is survived by
 * a restarted one taking the ring over (and a mounted ext4 on another
 * device keeps working through it), a device made by upstream's configfs
 * steps alone is served, the live snapshot API seals an upper under a
 * device, a remote image whose registry stops fails reads with EIO rather
 * than hang, and attach/detach in a loop leaks nothing. Images, configs and
 * the expected tree are prepared on the host.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImage } from '../lib/image.js';
import { commitLayer, createLayer } from '../lib/layer.js';
import { mergeLayers } from './helpers/convertor-tree.js';
import { prepareGuestRemoteImage } from './helpers/guest-registry.js';
import { snapshotOutcome, writeSnapshotData } from './helpers/guest-snapshot.js';
import { compileForGuest, runInGuest, type GuestResult } from './helpers/qemu-guest.js';
import { localBookworm, writeGlobalConfig } from './helpers/remote-image.js';
import { tempDir } from './helpers/vectors.js';

const GiB = 1024 ** 3;
const MiB = 1 << 20;
const here = path.dirname(new URL(import.meta.url).pathname);

let tmp: ReturnType<typeof tempDir>;
let share: string;
let bookworm: { tar: string; layers: string[] };
let guest: GuestResult;
let f: Record<string, string> = {};

function fields(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.split('\n').flatMap((l) => (/^[\w-]+=/.test(l) ? [[l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]] : [])));
}

const upper = (name: string) => ({ data: path.join(share, `${name}.data`), index: path.join(share, `${name}.index`) });

// OBD_GUEST_LOOP_S lengthens the guest's attach/detach loop (a soak run): more time for it.
const loopMs = Number(process.env.OBD_GUEST_LOOP_S ?? 0) * 1000;

beforeAll(async () => {
  tmp = tempDir('obd-tcmu-');
  share = path.join(tmp.dir, 'share');
  fs.mkdirSync(share);
  bookworm = await localBookworm('lz4');
  // The guest's /tmp is its own: the layer travels in the share dir.
  const layer = path.join(share, 'bookworm.lz4.blob');
  fs.copyFileSync(bookworm.layers[0]!, layer);
  bookworm = { ...bookworm, layers: [layer] };
  // The guest writes its configs (its paths are in its tmpfs).
  for (const name of ['rw', 'rw2', 'rw3', 'snap1', 'snap2']) await createLayer({ ...upper(name), virtualSize: 2 * GiB });
  writeSnapshotData(share);
  await prepareGuestRemoteImage(share, '/tmp/remote');
  const g = writeGlobalConfig(path.join(share, 'global'), { controlSocket: '/tmp/obd.sock' }, '/tmp/obd-cache');
  fs.copyFileSync(g.file, path.join(share, 'overlaybd.json'));
  for (const file of ['tree-list.sh', 'sg_write.py', 'remote-eio.sh']) fs.copyFileSync(path.join(here, 'guest', file), path.join(share, file));
  compileForGuest();
  // The expected tree: the source tar extracted, listed as the guest lists the device.
  const expected = path.join(tmp.dir, 'expected');
  mergeLayers([bookworm.tar], expected, path.join(tmp.dir, 'scratch'));
  const list = execFileSync('bash', ['-c', `. "${share}/tree-list.sh" && tree_list "${expected}"`], { maxBuffer: 256 * MiB });
  fs.writeFileSync(path.join(tmp.dir, 'tree-host.txt'), list);
  fs.rmSync(expected, { recursive: true, force: true });

  const script = fs.readFileSync(path.join(here, 'guest/tcmu.sh'), 'utf8');
  guest = await runInGuest({ kernel: '6.1', script, timeoutMs: 1_000_000 + loopMs, shareDir: share });
  f = fields(guest.stdout);
  console.log(`guest 6.1: ${guest.ms} ms wall; fields: ${JSON.stringify(f)}`);
}, 1_600_000 + loopMs);

afterAll(() => tmp?.cleanup());

const why = () => `${guest?.stdout}\n--- service log ---\n${fs.readFileSync(path.join(share, 'service.log'), 'utf8').slice(-4000)}`;

describe('TCMU devices in the 6.1 guest', () => {
  it('the script ran to its end', () => {
    expect(guest.code, why()).toBe(0);
    expect(f.service_rc, why()).toBe('0');
  });

  it('serves the bookworm image read-only: ext4, chroot, the tree file by file, DATA PROTECT on writes', () => {
    expect(f.a_dev, why()).toMatch(/^\/dev\/sd[a-z]+$/);
    expect(f.a_ro).toBe('1'); // the mode sense WP bit
    expect(Number(f.a_size)).toBe(2 * GiB);
    expect(f.a_mount).toBe('ok');
    expect(f.a_version).toMatch(/^12\.\d+$/);
    expect(f.a_tree_rc).toBe('0');
    const want = fs.readFileSync(path.join(tmp.dir, 'tree-host.txt'), 'utf8');
    const got = fs.readFileSync(path.join(share, 'tree-guest.txt'), 'utf8');
    expect(got.split('\n').length).toBeGreaterThan(1000);
    expect(got === want, 'tree listing differs').toBe(true);
    expect(f.a_sg_write).toBe('status=0x02 key=0x7 asc=0x27'); // CHECK CONDITION, DATA PROTECT, write protected
    expect(f.a_gone).toBe('yes');
  });

  it('writes with fio verify, re-verifies after a fresh attach; the commit holds the same bytes', async () => {
    expect(f.b_ro, why()).toBe('0');
    expect(f.b_fio_rc, fs.readFileSync(path.join(share, 'fio-b.log'), 'utf8')).toBe('0');
    expect(f.b_verify_rc, fs.readFileSync(path.join(share, 'fio-b-verify.log'), 'utf8')).toBe('0');
    const committed = path.join(tmp.dir, 'committed.lsmt');
    await commitLayer({ ...upper('rw'), out: committed });
    const before = await openImage({ lowers: [bookworm.layers[0]!], upper: upper('rw') });
    const after = await openImage({ lowers: [bookworm.layers[0]!, committed] });
    try {
      for (let off = GiB; off < GiB + 8 * MiB; off += 4 * MiB) {
        const [a, b] = [await before.read(off, 4 * MiB), await after.read(off, 4 * MiB)];
        expect(createHash('sha256').update(b).digest('hex')).toBe(createHash('sha256').update(a).digest('hex'));
        expect(a.equals(Buffer.alloc(4 * MiB))).toBe(false); // fio's data, not zeros
      }
    } finally {
      await before.close();
      await after.close();
    }
  });

  it('survives kill -9 of the service under fio: the restarted service takes the ring over', () => {
    expect(f.c_dev, why()).toMatch(/^\/dev\/sd[a-z]+$/);
    expect(f.c_fio_alive_after_kill).toBe('yes');
    expect(f.c_restart).toBe('0');
    expect(f.c_fio_rc, fs.readFileSync(path.join(share, 'fio-c.log'), 'utf8')).toBe('0');
    expect(f.c_io_errors).toBe('0');
    expect(f.c_listed).toBe('1');
    // The new handler found commands the killed one left and reset the ring.
    const found = fs.readFileSync(path.join(share, 'service.log'), 'utf8').split('\n').filter((l) => l.includes('"device.found"') && l.includes('rw2.json'));
    expect(found.map((l) => (JSON.parse(l) as { ringReset: boolean }).ringReset)).toEqual([true]);
    expect(f.c_gone).toBe('yes');
  });

  it('keeps a mounted ext4 working across the restart: flushed data read back, new data written, fsck clean', () => {
    expect(f.c_m_mount, why()).toBe('ok');
    expect(f.c_m_before).toBe('ok');
    expect(f.c_m_after, why()).toBe('ok');
    expect(f.c_m_write).toBe('ok');
    expect(f.c_m_umount).toBe('ok');
    expect(f.c_m_fsck, fs.readFileSync(path.join(share, 'fsck-c.log'), 'utf8')).toBe('0');
    const found = fs.readFileSync(path.join(share, 'service.log'), 'utf8').split('\n').filter((l) => l.includes('"device.found"') && l.includes('rw3.json'));
    expect(found).toHaveLength(1);
  });

  it("serves a device made by upstream's configfs steps alone, and lets it go when removed", () => {
    expect(f.d_dev, why()).toMatch(/^\/dev\/sd[a-z]+$/);
    expect(f.d_version).toMatch(/^12\.\d+$/);
    expect(f.d_listed).toBe('1');
    expect(f.d_pruned).toBe('0');
  });

  it('takes a live snapshot (§6.6): the sealed upper holds the writes before it, the new upper those after', async () => {
    expect(f.f_dev, why()).toMatch(/^\/dev\/sd[a-z]+$/);
    expect([f.f_write_a, f.f_snapshot, f.f_write_b]).toEqual(['ok', '1', 'ok']);
    const got = await snapshotOutcome(share, bookworm.layers[0]!, upper('snap1').data, upper('snap2'));
    expect(got).toEqual({ deviceSha: f.f_read, sealedHoldsA: true, freshHoldsAB: true });
    expect(f.f_next_left).toBe('no');
    // The device's config now names the new upper, as a restarted service would attach it.
    expect(JSON.parse(fs.readFileSync(path.join(share, 'snap.json'), 'utf8'))).toEqual({
      lowers: [{ file: '/tmp/img/bookworm.lz4.blob' }, { file: '/tmp/img/snap1.data' }],
      upper: { data: '/tmp/img/snap2.data', index: '/tmp/img/snap2.index' },
    });
  });

  it('fails reads of a remote image with EIO once its registry is gone, and still detaches', () => {
    expect(f.g_registry, why()).toBe('200');
    expect(f.g_dev).toMatch(/^\/dev\/sd[a-z]+$/);
    expect(f.g_read_before).toBe('ok');
    console.log(`unreachable registry: dd failed after ${f.g_dd_s} s`);
    expect(f.g_dd_rc).toBe('1'); // dd's failure, not timeout's 124
    // The read fails within the bound (dd's rc 1, not timeout's 124). Through SCSI the kernel's message is
    // not always "Input/output error" (CI saw g_dd_eio=0 with rc=1): logged, not asserted.
    console.log(`unreachable registry: dd error was EIO: ${f.g_dd_eio}`);
    expect(f.g_gone).toBe('yes');
  });

  it('attach/detach in a loop leaves no configfs entry, disk, fd or thread behind', () => {
    console.log(`attach/detach loop: ${f.e_loops} rounds in ${f.e_loop_s} s`);
    // As many rounds as fit in 45 s of the guest (TCG: seconds per round), 200 at most.
    expect(Number(f.e_loops), why()).toBeGreaterThanOrEqual(5);
    expect(f.e_bad).toBe('0');
    const [fds, fds0] = f.e_fds!.split('/');
    const [thr, thr0] = f.e_threads!.split('/');
    expect(fds).toBe(fds0);
    expect(thr).toBe(thr0);
    const [, cfg, cfg0] = /^\[(.*)\]\/\[(.*)\]$/.exec(f.e_configfs ?? '') ?? [];
    expect(cfg).toBe(cfg0);
    expect(cfg).not.toMatch(/naa\.|user_/);
    expect(f.e_sd).toBe('0');
    expect(f.e_uio).toBe('0');
  });
});
