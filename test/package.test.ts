/**
 * The single executables of `npm run package`, run as a host without Node
 * would: copied out of the checkout, PATH holding only them and the system
 * tools the device service calls (losetup, mount, umount), HOME in a temp
 * folder. overlaybd inspects a vector layer, overlaybd-tcmu serves a vector
 * stack through the FUSE frontend that overlaybd attach asks for, and the
 * snapshotter (once its source exists) answers gRPC on its socket.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceClient } from '../lib/containerd/proto.js';
import { runTool, toolArgs, waitFor } from './helpers/cli.js';
import { ROOT, tempDir, vector } from './helpers/vectors.js';

/** The system tools the device service runs, linked into the PATH the binaries get. */
const SYSTEM_TOOLS = ['losetup', 'mount', 'umount', 'fusermount3'];
const hasSnapshotter = fs.existsSync(path.join(ROOT, 'lib/cli/overlaybd-snapshotter.ts'));
const BINARIES = ['overlaybd', 'overlaybd-tcmu', ...(hasSnapshotter ? ['overlaybd-snapshotter'] : [])];

let tmp: ReturnType<typeof tempDir>;
let bin: string;
let env: NodeJS.ProcessEnv;
const children = new Set<ChildProcess>();

/** Runs a packaged binary outside the checkout with the node-less environment. */
function runBin(name: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(path.join(bin, name), args, { cwd: tmp.dir, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function startBin(name: string, args: string[]): { child: ChildProcess; stderr: () => string } {
  const child = spawn(path.join(bin, name), args, { cwd: tmp.dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  return { child, stderr: () => stderr };
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  return child.exitCode;
}

beforeAll(() => {
  const t0 = Date.now();
  const r = spawnSync('npm', ['run', 'package'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.stderr + r.stdout).not.toMatch(/^package: /m);
  expect(r.status).toBe(0);
  console.log(`npm run package: ${((Date.now() - t0) / 1000).toFixed(1)} s\n${r.stdout.trim()}`);

  tmp = tempDir('obd-package-');
  bin = path.join(tmp.dir, 'bin');
  const tools = path.join(tmp.dir, 'tools');
  fs.mkdirSync(bin);
  fs.mkdirSync(tools);
  for (const name of BINARIES) fs.copyFileSync(path.join(ROOT, 'dist-bin', name), path.join(bin, name));
  for (const t of SYSTEM_TOOLS) {
    const where = execFileSync('/bin/sh', ['-c', `command -v ${t}`], { encoding: 'utf8' }).trim();
    fs.symlinkSync(where, path.join(tools, t));
  }
  env = { PATH: `${bin}:${tools}`, HOME: path.join(tmp.dir, 'home') };
}, 900_000);

afterAll(async () => {
  for (const c of [...children]) await stop(c);
  if (!tmp) return;
  // Whatever a failed run left: FUSE mounts under tmp, loop devices over files in it.
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const mnt = line.split(' ')[1];
    if (mnt?.startsWith(tmp.dir)) spawnSync('umount', ['-l', mnt]);
  }
  for (const line of spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout.split('\n')) {
    if (line.includes(tmp.dir)) spawnSync('losetup', ['-d', line.split(':')[0]!]);
  }
  tmp.cleanup();
});

describe('npm run package', () => {
  it('makes executables that run with no node on PATH and outside the checkout', () => {
    for (const name of BINARIES) console.log(`${name}: ${(fs.statSync(path.join(bin, name)).size / 1e6).toFixed(1)} MB`);
    expect(spawnSync('/bin/sh', ['-c', 'command -v node'], { env }).status).not.toBe(0);

    const help = runBin('overlaybd', ['--help']);
    expect(help.stderr).toBe('');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: overlaybd <command>/);
    expect(help.stdout).toMatch(/^ {2}attach {5}/m);
    const bad = runBin('overlaybd', ['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^overlaybd: USAGE: unknown command 'frobnicate'/);
  });

  it('overlaybd inspect prints what the source tree prints, loading the addon it carries', () => {
    for (const layer of ['lsmt/A.commit', 'zfile/A.lz4bs4.tar']) {
      const packaged = runBin('overlaybd', ['inspect', vector(layer)]);
      expect(packaged.stderr).toBe('');
      expect(packaged.code).toBe(0);
      expect(packaged.stdout).toBe(runTool('overlaybd', ['inspect', vector(layer)]).stdout);
    }
    // The addon came out of the binary into HOME's cache, not from the checkout.
    const sea = path.join(env.HOME!, '.cache/overlaybd/sea');
    const [key] = fs.readdirSync(sea);
    const addon = path.join(sea, key!, 'build/Release/overlaybd.node');
    // A damaged extraction (same size, zeroed ELF header) is replaced, not loaded.
    const good = fs.readFileSync(addon);
    fs.writeFileSync(addon, Buffer.concat([Buffer.alloc(4096), good.subarray(4096)]));
    const again = runBin('overlaybd', ['inspect', vector('lsmt/A.commit')]);
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(fs.readFileSync(addon).equals(good)).toBe(true);
    expect(fs.readdirSync(sea)).toEqual([key]);
  });

  it('binaries starting at once into an empty cache share one extraction', async () => {
    const cache = path.join(tmp.dir, 'xdg-cache');
    const runs = Array.from({ length: 3 }, () =>
      new Promise<number | null>((resolve) => {
        const c = spawn(path.join(bin, 'overlaybd'), ['inspect', vector('lsmt/A.commit')], { cwd: tmp.dir, env: { ...env, XDG_CACHE_HOME: cache }, stdio: 'ignore' });
        c.once('exit', resolve);
      }),
    );
    expect(await Promise.all(runs)).toEqual([0, 0, 0]);
    // No half-written folder is left beside the one that won.
    expect(fs.readdirSync(path.join(cache, 'overlaybd/sea'))).toHaveLength(1);
  });

  it('falls back to a private folder in TMPDIR when the cache folder cannot be written', () => {
    const blocker = path.join(tmp.dir, 'not-a-dir');
    fs.writeFileSync(blocker, '');
    const tmpdir = path.join(tmp.dir, 'tmpdir');
    fs.mkdirSync(tmpdir);
    const r = spawnSync(path.join(bin, 'overlaybd'), ['inspect', vector('lsmt/A.commit')], {
      cwd: tmp.dir,
      env: { ...env, XDG_CACHE_HOME: blocker, TMPDIR: tmpdir },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const priv = path.join(tmpdir, `overlaybd-sea-${process.getuid!()}`);
    expect(fs.statSync(priv).mode & 0o777).toBe(0o700);
    expect(fs.readdirSync(priv)).toHaveLength(1);
  });

  it('overlaybd-tcmu serves a vector stack that overlaybd attach asks for through FUSE', async () => {
    const socket = path.join(tmp.dir, 'ctl.sock');
    const global = path.join(tmp.dir, 'overlaybd.json');
    const logFile = path.join(tmp.dir, 'log', 'overlaybd.log');
    fs.writeFileSync(
      global,
      JSON.stringify({
        cacheConfig: { cacheType: 'file', cacheDir: path.join(tmp.dir, 'cache'), cacheSizeGB: 1 },
        logConfig: { logPath: logFile },
        enableAudit: false,
        controlSocket: socket,
      }),
    );
    const config = path.join(tmp.dir, 'config.v1.json');
    fs.writeFileSync(config, JSON.stringify({ lowers: [{ file: vector('lsmt/A.commit') }, { file: vector('lsmt/B.commit') }] }));

    const svc = startBin('overlaybd-tcmu', [global]);
    try {
      await waitFor(() => fs.existsSync(socket) || svc.child.exitCode !== null, 'the control socket');
      expect(svc.child.exitCode, svc.stderr()).toBeNull();
      const a = runBin('overlaybd', ['attach', '--socket', socket, config]);
      expect(a.stderr).toBe('');
      expect(a.code).toBe(0);
      const dev = a.stdout.trim();
      expect(dev).toMatch(/^\/dev\/loop\d+$/);
      const list = JSON.parse(runBin('overlaybd', ['list', '--socket', socket]).stdout) as { path: string; frontend: string }[];
      expect(list).toMatchObject([{ path: dev, frontend: 'fuse' }]);
      // The device reads as the stack dumped by the source tree, where the
      // vectors put data: the first 6 MiB and the last 512 bytes (expected/AB.device-map.json).
      const dumped = path.join(tmp.dir, 'AB.img');
      const out = fs.openSync(dumped, 'w');
      const dump = spawnSync(process.execPath, [...toolArgs('overlaybd'), 'dump', config], { cwd: ROOT, stdio: ['ignore', out, 'pipe'] });
      fs.closeSync(out);
      expect(dump.status).toBe(0);
      const size = fs.statSync(dumped).size;
      for (const [offset, length] of [[0, 6 << 20], [size - (1 << 20), 1 << 20]] as const) {
        const want = readAt(dumped, offset, length);
        expect(want.some((b) => b !== 0)).toBe(true);
        expect(readAt(dev, offset, length).equals(want)).toBe(true);
      }
      expect(runBin('overlaybd', ['detach', '--socket', socket, dev]).code).toBe(0);
      expect(JSON.parse(runBin('overlaybd', ['list', '--socket', socket]).stdout)).toEqual([]);
    } finally {
      expect(await stop(svc.child)).toBe(0);
    }
    expect(fs.existsSync(socket)).toBe(false);
    // As upstream's, the service keeps a log file (logConfig.logPath): one JSON record a line.
    const events = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
    expect(events).toEqual(expect.arrayContaining(['service.started', 'device.attached', 'device.detached', 'service.stopped']));
  }, 180_000);

  it.skipIf(!hasSnapshotter)('overlaybd-snapshotter answers containerd snapshot calls on its socket', async () => {
    const root = path.join(tmp.dir, 'snapshotter');
    const address = path.join(tmp.dir, 'snapshotter.sock');
    const config = path.join(tmp.dir, 'snapshotter.json');
    fs.writeFileSync(config, JSON.stringify({ root, address }));
    const snap = startBin('overlaybd-snapshotter', [config]);
    const Snapshots = serviceClient('snapshots');
    const client = new Snapshots(`unix://${address}`, grpc.credentials.createInsecure());
    try {
      await waitFor(() => fs.existsSync(address) || snap.child.exitCode !== null, 'the snapshotter socket');
      expect(snap.child.exitCode, snap.stderr()).toBeNull();
      const infos = await new Promise<unknown[]>((resolve, reject) => {
        const out: unknown[] = [];
        const call = client.list!({ snapshotter: 'overlaybd' });
        call.on('data', (r: { info: unknown[] }) => out.push(...r.info));
        call.on('error', reject);
        call.on('end', () => resolve(out));
      });
      expect(infos).toEqual([]);
      const missing = await new Promise<grpc.ServiceError>((resolve) =>
        client.stat!({ snapshotter: 'overlaybd', key: 'missing' }, (e: grpc.ServiceError | null) => resolve(e!)),
      );
      expect(missing.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
      expect(await stop(snap.child)).toBe(0);
    }
  }, 120_000);
});

function readAt(file: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = fs.readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}
