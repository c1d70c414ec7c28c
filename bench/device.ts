/**
 * Block-device figures with fio (direct I/O, io_uring, short time-based
 * runs): 4 KiB random reads at QD1 and QD32 and 1 MiB sequential reads,
 * through each frontend on a local bookworm image, uncompressed and LZ4,
 * against a loop device (direct I/O) on a raw image of the same content,
 * measured in the same kernel: the raw image is the merged device dumped to
 * a sparse file; it and the layers are read from /dev/shm. Random reads
 * stay inside the range that holds data.
 *
 * `npm run bench -- device [--frontends=fuse,tcmu,ublk] [--guest]`
 *  --frontends  the frontends to measure (default all; one whose attach is
 *               ENOTSUP on this kernel is reported as skipped);
 *  --guest      also runs this bench in the qemu guest (scripts/guest):
 *               tcmu under Debian's 6.1 kernel, ublk under 6.12 (those of
 *               --frontends), on images
 *               prepared here and shared with the guest.
 * BENCH_DEVICE_SECONDS (default 3) sets each fio run's length and
 * BENCH_DEVICE_ROUNDS (default 3) the interleaved rounds (medians shown);
 * BENCH_DEVICE_WORK names a dir of prepared images (the guest run uses it).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { attachDevice, type Frontend } from '../lib/device/index.js';
import { isOverlaybdError } from '../lib/errors.js';
import { openImageConfig } from '../lib/service/open-config.js';
import { localBookworm } from '../test/helpers/remote-image.js';
import { medians } from './stats.js';

const exec = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ALL_FRONTENDS: Frontend[] = ['fuse', 'tcmu', 'ublk'];
const IMAGES = ['none', 'lz4'] as const;
type ImageKind = (typeof IMAGES)[number];

export interface DeviceFigures {
  /** 4 KiB random reads, one in flight. */
  randQd1Iops: number;
  /** 4 KiB random reads, 32 in flight. */
  randQd32Iops: number;
  /** 1 MiB sequential reads, 4 in flight. */
  seqMBps: number;
}

export interface MeasureOptions {
  /** Seconds per fio run (plus one of ramp-up). */
  seconds?: number;
  /** Random reads fall in [0, span) (the part of the device that holds data). */
  span?: number;
}

interface FioJob {
  read: { iops: number; bw_bytes: number };
  error: number;
}

async function fio(dev: string, args: string[], seconds: number): Promise<FioJob> {
  const { stdout } = await exec(
    'fio',
    [
      '--name=bench',
      `--filename=${dev}`,
      '--readonly',
      '--direct=1',
      '--ioengine=io_uring',
      '--time_based',
      `--runtime=${seconds}`,
      '--ramp_time=1',
      '--output-format=json',
      ...args,
    ],
    { maxBuffer: 16 << 20 },
  );
  const job = (JSON.parse(stdout) as { jobs: FioJob[] }).jobs[0];
  if (!job || job.error) throw new Error(`fio on ${dev} ${args.join(' ')}: error ${job?.error}`);
  return job;
}

/** The three fio figures of one block device (any frontend, or a plain loop device). */
export async function measureDevice(dev: string, o: MeasureOptions = {}): Promise<DeviceFigures> {
  const seconds = o.seconds ?? 3;
  const size = o.span ? [`--size=${o.span}`] : [];
  const rand = (qd: number) => fio(dev, ['--rw=randread', '--bs=4k', `--iodepth=${qd}`, '--norandommap', '--randrepeat=0', ...size], seconds);
  const qd1 = await rand(1);
  const qd32 = await rand(32);
  const seq = await fio(dev, ['--rw=read', '--bs=1m', '--iodepth=4'], seconds);
  return {
    randQd1Iops: Math.round(qd1.read.iops),
    randQd32Iops: Math.round(qd32.read.iops),
    seqMBps: Number((seq.read.bw_bytes / 2 ** 20).toFixed(1)),
  };
}

/** A prepared image: its config.v1.json, the raw dump of its device, and the end of its data. */
interface Prepared {
  config: string;
  raw: string;
  span: number;
}

/**
 * The span [0, end) that holds 95% of a sparse file's data (SEEK_DATA /
 * SEEK_HOLE), rounded up to 1 MiB: ext4 puts a few metadata blocks near the
 * end of the device, which would leave random reads mostly in holes.
 */
function dataSpan(file: string): number {
  const out = execFileSync('python3', [
    '-c',
    `import os,sys
fd=os.open(sys.argv[1],os.O_RDONLY); size=os.fstat(fd).st_size; ext=[]; off=0
while off<size:
    try: d=os.lseek(fd,off,os.SEEK_DATA)
    except OSError: break
    h=os.lseek(fd,d,os.SEEK_HOLE); ext.append((d,h)); off=h
total=sum(h-d for d,h in ext); acc=0; end=0
for d,h in ext:
    if acc>=0.95*total: break
    acc+=h-d; end=h
print(end)`,
    file,
  ]);
  const end = Number(out.toString().trim());
  return Math.ceil(end / 2 ** 20) * 2 ** 20;
}

async function prepare(work: string, kind: ImageKind): Promise<Prepared> {
  const dir = path.join(work, kind);
  const config = path.join(dir, 'config.v1.json');
  const raw = path.join(dir, 'raw.img');
  if (!fs.existsSync(raw)) {
    fs.mkdirSync(dir, { recursive: true });
    const { layers } = await localBookworm(kind);
    const local = layers.map((l, i) => {
      const to = path.join(dir, `layer${i}`);
      fs.copyFileSync(l, to);
      return { file: path.basename(to) };
    });
    fs.writeFileSync(config, JSON.stringify({ lowers: local }));
    const img = await openImageConfig(config);
    const fd = fs.openSync(raw + '.tmp', 'w');
    try {
      await img.dump(fd);
    } finally {
      fs.closeSync(fd);
      await img.close();
    }
    fs.renameSync(raw + '.tmp', raw);
  }
  // Measured where the dump was made: 9p (the guest's view of it) has no SEEK_DATA.
  const spanFile = path.join(dir, 'span');
  if (!fs.existsSync(spanFile)) fs.writeFileSync(spanFile, String(dataSpan(raw)));
  return { config, raw, span: Number(fs.readFileSync(spanFile, 'utf8')) };
}

/**
 * The prepared image (layers, config, raw dump) copied to /dev/shm for the
 * measurement: the loop baseline and the frontends both read memory, so the
 * ratio shows the frontend's cost, not the disk's (or, in the guest, 9p's).
 */
async function inMemory<T>(p: Prepared, fn: (staged: Prepared) => Promise<T>): Promise<T> {
  const dir = path.join('/dev/shm', `obd-bench-${process.pid}-${path.basename(path.dirname(p.config))}`);
  fs.mkdirSync(dir);
  try {
    for (const f of fs.readdirSync(path.dirname(p.config))) {
      if (f === 'config.v1.json' || f === 'raw.img' || f.startsWith('layer')) {
        execFileSync('cp', ['--sparse=always', path.join(path.dirname(p.config), f), dir]);
      }
    }
    return await fn({ config: path.join(dir, 'config.v1.json'), raw: path.join(dir, 'raw.img'), span: p.span });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A read-only loop device with direct I/O when the file's filesystem has it (6.1's tmpfs does not). */
async function withLoop<T>(file: string, fn: (dev: string, dio: boolean) => Promise<T>): Promise<T> {
  const setup = (dio: string[]) => execFileSync('losetup', ['--find', '--show', ...dio, '--read-only', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  let dev: string;
  try {
    dev = setup(['--direct-io=on']);
  } catch {
    dev = setup([]);
  }
  try {
    const dio = execFileSync('losetup', ['-n', '-O', 'DIO', dev], { encoding: 'utf8' }).trim() === '1';
    return await fn(dev, dio);
  } finally {
    execFileSync('losetup', ['-d', dev]);
  }
}

function options(): { frontends: Frontend[]; guest: boolean } {
  let frontends = ALL_FRONTENDS;
  let guest = false;
  for (const a of process.argv.slice(2)) {
    if (a.startsWith('--frontends=')) {
      frontends = a.slice('--frontends='.length).split(',') as Frontend[];
      const bad = frontends.filter((f) => !ALL_FRONTENDS.includes(f));
      if (bad.length) throw new Error(`--frontends: unknown ${bad.join(', ')} (known: ${ALL_FRONTENDS.join(', ')})`);
    } else if (a === '--guest') guest = true;
  }
  return { frontends, guest };
}

const ratio = (a: number, b: number) => Number((a / b).toFixed(3));

/**
 * Measures every frontend against loop for each image kind, in this kernel:
 * `rounds` rounds that take loop and each frontend in turn, so load from
 * elsewhere on the machine falls on all of them alike; medians are printed.
 */
async function measureHere(work: string, frontends: Frontend[], seconds: number, rounds: number): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = { kernel: os.release(), rounds, secondsPerRun: seconds };
  const runDir = path.join(work, 'run');
  for (const kind of IMAGES) {
    const prepared = await prepare(work, kind);
    out[`${kind}.dataMiB`] = prepared.span / 2 ** 20;
    await inMemory(prepared, (p) => withLoop(p.raw, async (loopDev, dio) => {
      out[`${kind}.loop.directIo`] = dio ? 'on' : 'off (the kernel fell back to buffered)';
      const devices: { name: string; path: string; detach?: () => Promise<void> }[] = [{ name: 'loop', path: loopDev }];
      try {
        for (const f of frontends) {
          try {
            const d = await attachDevice(p.config, { frontend: f, runDir });
            devices.push({ name: f, path: d.path, detach: () => d.detach() });
          } catch (e) {
            if (!(isOverlaybdError(e) && e.code === 'ENOTSUP')) throw e;
            out[`${kind}.${f}`] = 'skipped (ENOTSUP)';
          }
        }
        const runs = new Map<string, DeviceFigures[]>(devices.map((d) => [d.name, []]));
        for (let r = 0; r < rounds; r++) {
          for (const d of devices) runs.get(d.name)!.push(await measureDevice(d.path, { seconds, span: p.span }));
        }
        const loop = medians(runs.get('loop')!);
        for (const [k, v] of Object.entries(loop)) out[`${kind}.loop.${k}`] = v;
        for (const d of devices.slice(1)) {
          for (const [k, v] of Object.entries(medians(runs.get(d.name)!))) {
            out[`${kind}.${d.name}.${k}`] = v;
            out[`${kind}.${d.name}.${k}.ratio`] = ratio(v, loop[k as keyof DeviceFigures]);
          }
        }
      } finally {
        for (const d of devices) await d.detach?.();
      }
    }));
  }
  return out;
}

/** One guest boot per kernel, each running this bench for the frontend that kernel has. */
async function measureInGuests(work: string, seconds: number, rounds: number, frontends: Frontend[]): Promise<Record<string, number | string>> {
  const { runInGuest } = await import('../test/helpers/qemu-guest.js');
  const out: Record<string, number | string> = {};
  for (const [kernel, frontend, modules] of [
    ['6.1', 'tcmu', 'loop target_core_user tcm_loop sd_mod'],
    ['6.12', 'ublk', 'loop ublk_drv'],
  ] as const) {
    if (!frontends.includes(frontend)) continue;
    const json = path.join(work, `guest-${kernel}.json`);
    fs.rmSync(json, { force: true });
    const script = [
      // The guest's modules load on demand only through modprobe (scripts/guest/README.md).
      `modprobe -a ${modules}`,
      `cd ${JSON.stringify(ROOT)}`,
      `BENCH_DEVICE_WORK=${JSON.stringify(work)} BENCH_DEVICE_SECONDS=${seconds} BENCH_DEVICE_ROUNDS=${rounds} BENCH_JSON=${JSON.stringify(json)} ` +
        `node --import tsx bench/run.ts device --frontends=${frontend}`,
    ].join('\n');
    const r = await runInGuest({ kernel, script, timeoutMs: 900_000, shareDir: work });
    if (r.code !== 0 || !fs.existsSync(json)) {
      out[`guest${kernel}`] = `failed (exit ${r.code}): ${r.stdout.split('\n').slice(-5).join(' | ')}`;
      continue;
    }
    const figures = (JSON.parse(fs.readFileSync(json, 'utf8')) as { device: Record<string, number | string> }).device;
    for (const [k, v] of Object.entries(figures)) out[`guest${kernel}.${k}`] = v;
  }
  return out;
}

export async function run(): Promise<Record<string, number | string>> {
  const { frontends, guest } = options();
  const seconds = Number(process.env.BENCH_DEVICE_SECONDS ?? 3);
  const rounds = Number(process.env.BENCH_DEVICE_ROUNDS ?? 3);
  const given = process.env.BENCH_DEVICE_WORK;
  const work = given ?? fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-device-'));
  try {
    const out = await measureHere(work, frontends, seconds, rounds);
    if (guest) Object.assign(out, await measureInGuests(work, seconds, rounds, frontends));
    return out;
  } finally {
    if (!given) fs.rmSync(work, { recursive: true, force: true });
  }
}
