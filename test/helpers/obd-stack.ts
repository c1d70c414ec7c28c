/**
 * What a user runs to serve overlaybd images under containerd, started for a
 * test in one temp dir: our device service (`overlaybd serve`, FUSE frontend
 * here), overlaybd-snapshotter on it, and optionally a private containerd
 * with the snapshotter as proxy plugin `obd`. `stop()` takes them down in
 * the reverse order and unmounts what is left under the dir.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { callService } from '../../lib/device/service.js';
import { spawnTool, waitFor } from './cli.js';
import { mountsUnder, startContainerd, type TestContainerd } from './containerd.js';
import { stopChild, trackChild } from './registry.js';
import { writeGlobalConfig } from './remote-image.js';
import { startSnapshotter, type TestSnapshotter } from './snapshotter.js';
import { tempDir } from './vectors.js';

export interface ObdStackOptions {
  /** Prefix of the temp dir. */
  name: string;
  /** Snapshotter config keys over the device-service ones. */
  snapshotter?: Record<string, unknown>;
  /** Start containerd too, reaching these registries over plain HTTP. */
  containerd?: { plainHttpRegistries: string[] };
}

export interface ObdStack {
  dir: string;
  deviceSocket: string;
  /** The snapshotter config as given (deviceSocket and frontend included), to start it again. */
  snapshotterConfig: Record<string, unknown>;
  /** Replace it when a test restarts the snapshotter: stop() stops what is here. */
  snap: TestSnapshotter;
  /** Present when asked for. */
  cd: TestContainerd | undefined;
  /** The device service's devices (what `overlaybd list` prints), asked in-process. */
  devices(): Promise<{ path: string; config: string }[]>;
  stop(): Promise<void>;
}

export async function startObdStack(opts: ObdStackOptions): Promise<ObdStack> {
  const tmp = tempDir(`obd-${opts.name}-`);
  const deviceSocket = path.join(tmp.dir, 'dev.sock');
  const global = writeGlobalConfig(path.join(tmp.dir, 'svc'), { enableAudit: false, controlSocket: deviceSocket }).file;
  const device = spawnTool('overlaybd', ['serve', '--global', global]);
  trackChild(device.child);
  const snapshotterConfig = { deviceSocket, deviceFrontend: 'fuse', ...opts.snapshotter };
  const started: Partial<Pick<ObdStack, 'snap' | 'cd'>> = {};
  const stop = async (): Promise<void> => {
    await started.cd?.stop();
    await started.snap?.stop();
    await stopChild(device.child, 15_000);
    for (const m of mountsUnder(tmp.dir)) execFileSync('umount', ['-l', m]);
    tmp.cleanup();
  };
  try {
    await waitFor(() => fs.existsSync(deviceSocket) || device.child.exitCode !== null, 'the device service socket');
    if (!fs.existsSync(deviceSocket)) throw new Error(`overlaybd serve exited at start:\n${device.stderr}`);
    started.snap = await startSnapshotter(snapshotterConfig);
    if (opts.containerd) started.cd = await startContainerd({ proxySnapshotters: { obd: started.snap.socket }, ...opts.containerd });
  } catch (e) {
    await stop();
    throw e;
  }
  const devices = async () => (await callService(deviceSocket, 'GET', '/list')) as { path: string; config: string }[];
  // stop() reads `started`, so a snapshotter a test starts again (stack.snap = ...) is the one stopped.
  return Object.assign(started as { snap: TestSnapshotter; cd: TestContainerd | undefined }, {
    dir: tmp.dir,
    deviceSocket,
    snapshotterConfig,
    devices,
    stop,
  });
}
