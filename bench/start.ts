/**
 * Container start, end to end: the time from pulling an image to the first
 * line of `ctr run … cat /etc/debian_version`, and the bytes the registry
 * served for it. Ours: `overlaybd rpull` of the converted bookworm image
 * into overlaybd-snapshotter, then `ctr run --snapshotter obd` (lazy reads
 * through the device service). Baseline, same registry and machine:
 * `ctr pull` + `ctr run` of the original OCI image with containerd's
 * overlayfs snapshotter. Every run has a fresh containerd (cold content
 * store), snapshotter and image cache. `rpull` runs two ways, both built
 * first so a stale build is never timed: as the npm package's bin (dist/,
 * `npm run build:ts`) and as the single-file executable (dist-bin/, `npm
 * run package`, whose V8 code cache spares most of the module compile).
 * Its start-up is in our time, and measured alone too (`rpull --help`: the
 * modules rpull loads). Two images: bookworm, and bookworm
 * plus a 500 MB layer of random bytes the command never reads
 * (start-image.ts), to show how the ratio moves with image size.
 * BENCH_START_ROUNDS (default 3) rounds take the baseline and each of ours
 * in turn, so a slow spell of the machine (the baseline's `ctr pull` writes
 * and fsyncs 58 MB, and varies 2.7-5.4 s alone) weighs on all of them;
 * figures are medians, and the baseline's spread is printed beside them.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bookwormLayout } from '../test/helpers/bookworm.js';
import { spawnTool, waitFor } from '../test/helpers/cli.js';
import { ROOT } from '../test/helpers/vectors.js';
import { mountsUnder, startContainerd, type TestContainerd } from '../test/helpers/containerd.js';
import { servedSince, logMark } from '../test/helpers/registry-bytes.js';
import { skopeoCopy, startRegistry, stopChild, type TestRegistry } from '../test/helpers/registry.js';
import { remoteBookworm, writeGlobalConfig } from '../test/helpers/remote-image.js';
import { removeRuncContainers } from '../test/helpers/runc.js';
import { startSnapshotter } from '../test/helpers/snapshotter.js';
import { bulkyImage, pushImage } from './start-image.js';
import { median, medians } from './stats.js';

interface StartFigures {
  /** Pull (rpull or ctr pull) alone. */
  pullS: number;
  /** CPU seconds of `overlaybd rpull` (ours only). */
  pullCpuS?: number;
  /** From the pull's start to the first line the container printed. */
  firstLineS: number;
  /** What the registry served (manifests, configs, blobs) and the blob part of it. */
  servedMB: number;
  blobMB: number;
  blobGets: number;
}

const MB = 2 ** 20;
// Our own namespace: runc's state dir is per namespace and shared by every containerd here.
const NS = `bench-start-${process.pid}`;
const round = (n: number, d = 3) => Number(n.toFixed(d));

const DIST_CLI = path.join(ROOT, 'dist/lib/cli/overlaybd.js');
/** GNU time (Debian's `time` package, optional), and the prefix of the line it adds to stderr. */
const TIME = '/usr/bin/time';
const CPU_MARK = 'obd-bench-cpu ';
const SEA_CLI = path.join(ROOT, 'dist-bin/overlaybd');

/** A way to run `overlaybd`: its argv prefix, and the label its figures carry. */
interface Cli {
  label: string;
  argv: string[];
}
const CLIS: Cli[] = [
  { label: 'npm bin', argv: [process.execPath, DIST_CLI] },
  { label: 'single-file bin', argv: [SEA_CLI] },
];

/**
 * Runs `overlaybd ...args` to its end; rejects with its stderr on a non-zero
 * exit. Resolves the CPU seconds (user + system) it used, counted by GNU
 * time when installed (a figure a busy machine inflates far less than wall
 * time), else NaN.
 */
async function overlaybd(cli: Cli, args: string[]): Promise<number> {
  const timed = fs.existsSync(TIME);
  const argv = [...cli.argv, ...args];
  const child = timed
    ? spawn(TIME, ['-f', `${CPU_MARK}%U %S`, ...argv], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`overlaybd ${args.join(' ')} exited ${code}: ${stderr}`);
  const cpu = new RegExp(`${CPU_MARK}([\\d.]+) ([\\d.]+)`).exec(stderr);
  return cpu ? round(Number(cpu[1]) + Number(cpu[2]), 2) : NaN;
}

/** Runs `ctr` and resolves at the first line it prints (then waits for its exit). */
async function firstLine(cd: TestContainerd, args: string[]): Promise<{ line: string; atMs: number }> {
  const child = spawn('ctr', ['-a', cd.socket, '-n', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let first: { line: string; atMs: number } | undefined;
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
    if (!first && stdout.includes('\n')) first = { line: stdout.slice(0, stdout.indexOf('\n')), atMs: performance.now() };
  });
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0 || !first) throw new Error(`ctr ${args.join(' ')}: exit ${code}, stdout ${JSON.stringify(stdout)}: ${stderr}`);
  return first;
}

function figures(reg: TestRegistry, mark: number, t0: number, pulledAt: number, firstAt: number): StartFigures {
  const served = servedSince(reg.logFile, mark).filter((r) => r.method === 'GET');
  const blobs = served.filter((r) => r.uri.includes('/blobs/'));
  return {
    pullS: round((pulledAt - t0) / 1000),
    firstLineS: round((firstAt - t0) / 1000),
    servedMB: round(served.reduce((a, r) => a + r.written, 0) / MB),
    blobMB: round(blobs.reduce((a, r) => a + r.written, 0) / MB),
    blobGets: blobs.length,
  };
}

/** rpull + ctr run through overlaybd-snapshotter and a fresh device service. */
async function ours(cli: Cli, reg: TestRegistry, ref: string, work: string, id: string): Promise<StartFigures> {
  const deviceSocket = path.join(work, 'dev.sock');
  const global = writeGlobalConfig(path.join(work, 'svc'), { enableAudit: false, controlSocket: deviceSocket }).file;
  const device = spawnTool('overlaybd', ['serve', '--global', global]);
  try {
    await waitFor(() => fs.existsSync(deviceSocket), 'the device service socket');
    const snap = await startSnapshotter({ deviceSocket, deviceFrontend: 'fuse', autoRemoveDev: true, mirrorRegistry: [{ host: reg.host, insecure: true }], verbose: 'info' });
    try {
      const cd = await startContainerd({ proxySnapshotters: { obd: snap.socket }, plainHttpRegistries: [reg.host] });
      try {
        const mark = logMark(reg.logFile);
        const t0 = performance.now();
        const pullCpuS = await overlaybd(cli, ['rpull', '--plain-http', '--address', cd.socket, '--namespace', NS, '--snapshotter', 'obd', ref]);
        const pulledAt = performance.now();
        const first = await firstLine(cd, ['run', '--rm', '--snapshotter', 'obd', ref, `${id}-obd`, 'cat', '/etc/debian_version']);
        if (!/^12\./.test(first.line)) throw new Error(`the container printed ${JSON.stringify(first.line)}`);
        return { ...figures(reg, mark, t0, pulledAt, first.atMs), pullCpuS };
      } finally {
        await cd.stop();
      }
    } finally {
      await snap.stop();
    }
  } finally {
    await stopChild(device.child, 15_000);
    for (const m of mountsUnder(work)) execFileSync('umount', ['-l', m]);
  }
}

/** ctr pull + ctr run of the OCI image with containerd's overlayfs snapshotter. */
async function baseline(reg: TestRegistry, ref: string, id: string): Promise<StartFigures> {
  const cd = await startContainerd({ plainHttpRegistries: [reg.host] });
  try {
    const mark = logMark(reg.logFile);
    const t0 = performance.now();
    await cd.ctr(['images', 'pull', '--hosts-dir', cd.hostsDir, ref], { timeoutMs: 600_000, namespace: NS });
    const pulledAt = performance.now();
    const first = await firstLine(cd, ['run', '--rm', ref, `${id}-oci`, 'cat', '/etc/debian_version']);
    if (!/^12\./.test(first.line)) throw new Error(`the container printed ${JSON.stringify(first.line)}`);
    return figures(reg, mark, t0, pulledAt, first.atMs);
  } finally {
    await cd.stop();
  }
}

/** One image measured both ways. */
interface Pair {
  label: string;
  ociRef: string;
  obdRef: string;
  ociBlobsMB: number;
  obdBlobsMB: number;
}

function baseFigures(p: Pair, base: StartFigures): Record<string, number | string> {
  const k = (name: string) => `${p.label}: ${name}`;
  return {
    [k('OCI layer blobs MB')]: round(p.ociBlobsMB, 1),
    [k('overlaybd layer blobs MB')]: round(p.obdBlobsMB, 1),
    [k('ctr pull s')]: base.pullS,
    [k('ctr pull + run: first line s')]: base.firstLineS,
    [k('ctr pull + run: served MB')]: base.servedMB,
    [k('ctr pull + run: blob GETs')]: base.blobGets,
  };
}

function oursFigures(p: Pair, cli: Cli, base: StartFigures, mine: StartFigures, toolStartS: number): Record<string, number | string> {
  const k = (name: string) => `${p.label}, ${cli.label}: ${name}`;
  return {
    [k('rpull s (CLI start included)')]: mine.pullS,
    [k('rpull CPU s (user + system)')]: mine.pullCpuS ?? NaN,
    [k('rpull + run: first line s')]: mine.firstLineS,
    [k('rpull + run: served MB')]: mine.servedMB,
    [k('rpull + run: blob MB')]: mine.blobMB,
    [k('rpull + run: blob GETs')]: mine.blobGets,
    [k('rpull + run: blob MB / overlaybd blobs')]: round(mine.blobMB / p.obdBlobsMB),
    [k('first line: ours / ctr pull + run')]: round(mine.firstLineS / base.firstLineS, 2),
    [k('first line less CLI start: ours / ctr')]: round((mine.firstLineS - toolStartS) / base.firstLineS, 2),
    [k('served MB: ours / ctr pull + run')]: round(mine.servedMB / base.servedMB),
  };
}

/** Wall and CPU seconds of `overlaybd rpull --help`: node plus the modules rpull loads. */
async function cliStart(cli: Cli): Promise<{ wallS: number; cpuS: number }> {
  const t = performance.now();
  const cpuS = await overlaybd(cli, ['rpull', '--help']);
  return { wallS: round((performance.now() - t) / 1000), cpuS };
}

export async function run(): Promise<Record<string, number | string>> {
  for (const script of ['build:ts', 'package']) execFileSync('npm', ['run', '--silent', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const reg = await startRegistry({ mode: 'plain' });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-start-'));
  try {
    const rb = await remoteBookworm({ registry: reg });
    const bw = await bookwormLayout();
    const ociRef = `${reg.host}/bookworm/oci:${bw.tag}`;
    await skopeoCopy(bw.layout, bw.tag, ociRef);
    await rb.close();
    const bulky = await bulkyImage(reg);
    const pairs: Pair[] = [
      {
        label: 'bookworm',
        ociRef,
        obdRef: `${reg.host}/${rb.repo}:${rb.tag}`,
        ociBlobsMB: bw.image.layers.reduce((a, l) => a + l.size, 0) / MB,
        obdBlobsMB: rb.lowers.reduce((a, l) => a + l.size, 0) / MB,
      },
      {
        label: `+${bulky.bulkMB} MB layer`,
        ociRef: await pushImage(reg, path.join(bulky.layout, 'blobs', 'sha256'), bulky.ociManifest, 'bulky/oci', bulky.tag),
        obdRef: await pushImage(reg, bulky.obdBlobs, bulky.obdManifest, 'bulky/obd', 'obd'),
        ociBlobsMB: bulky.ociLayers.reduce((a, l) => a + l.size, 0) / MB,
        obdBlobsMB: bulky.obdLayers.reduce((a, l) => a + l.size, 0) / MB,
      },
    ];

    const out: Record<string, number | string> = {};
    const toolStartS = new Map<Cli, number>();
    for (const cli of CLIS) {
      const start = medians([await cliStart(cli), await cliStart(cli), await cliStart(cli)]);
      toolStartS.set(cli, start.wallS);
      out[`${cli.label}: rpull --help s (CLI start)`] = start.wallS;
      out[`${cli.label}: rpull --help CPU s`] = start.cpuS;
    }
    const rounds = Number(process.env.BENCH_START_ROUNDS ?? 3);
    if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`BENCH_START_ROUNDS: want a whole number >= 1, got '${process.env.BENCH_START_ROUNDS}'`);
    out['rounds (medians shown)'] = rounds;
    for (const [i, p] of pairs.entries()) {
      const base: StartFigures[] = [];
      const mine = new Map<Cli, StartFigures[]>(CLIS.map((c) => [c, []]));
      for (let r = 0; r < rounds; r++) {
        base.push(await baseline(reg, p.ociRef, `start${i}-${r}`));
        for (const [j, cli] of CLIS.entries()) mine.get(cli)!.push(await ours(cli, reg, p.obdRef, path.join(work, `${i}-${r}-${j}`), `start${i}-${r}-${j}`));
      }
      const b = medians(base);
      Object.assign(out, baseFigures(p, b));
      const spread = base.map((f) => f.firstLineS);
      out[`${p.label}: ctr pull + run: first line s, min..max`] = `${Math.min(...spread)}..${Math.max(...spread)}`;
      for (const cli of CLIS) {
        const m = mine.get(cli)!;
        Object.assign(out, oursFigures(p, cli, b, medians(m), toolStartS.get(cli)!));
        // The ratio of each round against its own baseline: how far one run's figure can stray.
        const perRound = m.map((f, r) => round(f.firstLineS / base[r]!.firstLineS, 2));
        out[`${p.label}, ${cli.label}: first line ratio by round`] = perRound.join(' ');
        out[`${p.label}, ${cli.label}: median of round ratios`] = median(perRound);
      }
    }
    return out;
  } finally {
    removeRuncContainers(NS);
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
