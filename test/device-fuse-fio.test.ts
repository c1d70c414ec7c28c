/**
 * A writable FUSE + loop device under Debian's fio (root): a random-write
 * workload with crc32c verify headers, flushed; the upper committed with
 * overlaybd-commit and stacked read-only in a new config, where
 * `fio --verify_only` checks every block again (commit and re-read agree).
 * Discards (blkdiscard) read back as zeros through a fresh attach, over
 * the lower's data too, and through the committed layer.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AttachedDevice } from '../lib/device/index.js';
import { createLayer } from '../lib/layer.js';
import { runTool } from './helpers/cli.js';
import { localBookworm } from './helpers/remote-image.js';
import { FuseDevices, writeConfig as writeTestConfig } from './helpers/fuse-devices.js';
import { tempDir } from './helpers/vectors.js';

const MiB = 1 << 20;
const GiB = 1024 * MiB;

let tmp: ReturnType<typeof tempDir>;
let runDir: string;
let lower: string;
const devices = new FuseDevices(() => runDir);
const attach = (cfg: string) => devices.attach(cfg);
const detach = (d: AttachedDevice) => devices.detach(d);
const writeConfig = (name: string, config: object) => writeTestConfig(tmp.dir, name, config);

/** One fio job over [1 GiB, 1 GiB + 96 MiB): the same arguments write and verify (same seed, same block list). */
function fio(dev: string, extra: string[]): { status: number | null; out: string } {
  const args = [
    '--name=obd',
    `--filename=${dev}`,
    '--ioengine=libaio',
    '--direct=1',
    '--iodepth=16',
    '--rw=randwrite',
    '--bsrange=4k-128k',
    `--offset=${GiB}`,
    `--size=${96 * MiB}`,
    '--verify=crc32c',
    '--verify_fatal=1',
    '--randrepeat=1',
    '--randseed=4242',
    '--verify_state_save=0', // no state file left in the cwd
    ...extra,
  ];
  const r = spawnSync('fio', args, { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

/** Reads with O_DIRECT (dd: aligned buffers), past any page cache of the loop device. */
function readAt(dev: string, offset: number, length: number): Buffer {
  return execFileSync('dd', [`if=${dev}`, 'bs=64k', `skip=${offset / 65536}`, `count=${length / 65536}`, 'iflag=direct', 'status=none'], {
    maxBuffer: length + MiB,
  });
}

beforeAll(async () => {
  tmp = tempDir('obd-fuse-fio-');
  runDir = path.join(tmp.dir, 'run');
  fs.mkdirSync(runDir);
  lower = (await localBookworm('lz4')).layers[0]!;
}, 600_000);

afterEach(async () => {
  await devices.detachAll();
});

afterAll(() => {
  tmp?.cleanup();
});

describe('FUSE + loop under fio', () => {
  it('takes a verified random-write workload; the committed upper re-reads the same under --verify_only', async () => {
    const up = { data: path.join(tmp.dir, 'fio.data'), index: path.join(tmp.dir, 'fio.index') };
    await createLayer({ ...up, virtualSize: 2 * GiB });
    const rw = await attach(writeConfig('fio-rw', { lowers: [{ file: lower }], upper: up }));
    const w = fio(rw.path, ['--do_verify=1', '--end_fsync=1']);
    expect(w.out).not.toMatch(/verify: bad|crc32c: verify failed|fio: pid=\d+, err=/);
    expect(w.status).toBe(0);
    expect(w.out).toMatch(/write: IOPS=/);
    expect(w.out).toMatch(/read: IOPS=/); // the verify pass
    await detach(rw);
    // Flushed: the upper's files hold the workload (96 MiB of data, less what later writes overwrote).
    expect(fs.statSync(up.data).size).toBeGreaterThan(64 * MiB);

    const committed = path.join(tmp.dir, 'fio.committed');
    const c = runTool('overlaybd-commit', ['-z', up.data, up.index, committed]);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);

    const ro = await attach(writeConfig('fio-ro', { lowers: [{ file: lower }, { file: committed }] }));
    expect(execFileSync('losetup', ['-n', '-l', '-O', 'RO', ro.path], { encoding: 'utf8' }).trim()).toBe('1');
    const v = fio(ro.path, ['--verify_only']);
    expect(v.out).not.toMatch(/verify: bad|crc32c: verify failed|fio: pid=\d+, err=/);
    expect(v.status).toBe(0);
    expect(v.out).toMatch(/read: IOPS=/); // it did read the blocks back
    await detach(ro);
  }, 600_000);

  it('reads discarded ranges as zeros through a fresh attach and through the commit', async () => {
    const up = { data: path.join(tmp.dir, 'trim.data'), index: path.join(tmp.dir, 'trim.index') };
    await createLayer({ ...up, virtualSize: 2 * GiB });
    const cfg = writeConfig('trim', { lowers: [{ file: lower }], upper: up });
    const at = 1536 * MiB;
    const pattern = randomBytes(4 * MiB);
    const src = path.join(tmp.dir, 'pattern');
    fs.writeFileSync(src, pattern);

    const d1 = await attach(cfg);
    // The lower's first MiB (ext4 superblock and group descriptors) is not zero.
    const head = readAt(d1.path, 0, MiB);
    expect(head.some((b) => b !== 0)).toBe(true);
    execFileSync('dd', [`if=${src}`, `of=${d1.path}`, 'bs=1M', `seek=${at / MiB}`, 'oflag=direct', 'conv=fsync', 'status=none']);
    // Discard the lower's first MiB and the middle 2 MiB of the pattern.
    execFileSync('blkdiscard', ['--force', '-o', '0', '-l', String(MiB), d1.path]);
    execFileSync('blkdiscard', ['--force', '-o', String(at + MiB), '-l', String(2 * MiB), d1.path]);
    execFileSync('blockdev', ['--flushbufs', d1.path]);
    await detach(d1);

    const expected = Buffer.from(pattern);
    expected.fill(0, MiB, 3 * MiB);
    const d2 = await attach(cfg);
    expect(readAt(d2.path, 0, MiB).equals(Buffer.alloc(MiB))).toBe(true);
    expect(readAt(d2.path, at, 4 * MiB).equals(expected)).toBe(true);
    await detach(d2);

    const committed = path.join(tmp.dir, 'trim.committed');
    expect(runTool('overlaybd-commit', [up.data, up.index, committed]).code).toBe(0);
    const d3 = await attach(writeConfig('trim-ro', { lowers: [{ file: lower }, { file: committed }] }));
    expect(readAt(d3.path, 0, MiB).equals(Buffer.alloc(MiB))).toBe(true);
    expect(readAt(d3.path, at, 4 * MiB).equals(expected)).toBe(true);
    await detach(d3);
  }, 300_000);
});
