/**
 * Runs overlaybd-snapshotter as its users do (a child process with a
 * config.json), gives a gRPC client of its socket, and builds the tiny
 * busybox OCI image of environment.md §3 (umoci + busybox-static) offline.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { serviceClient } from '../../lib/containerd/proto.js';
import { spawnTool, waitFor } from './cli.js';
import { mountsUnder } from './containerd.js';
import { stopChild, trackChild } from './registry.js';

export interface TestSnapshotter {
  dir: string;
  root: string;
  socket: string;
  configFile: string;
  child: ChildProcess;
  /** Everything the process wrote on stderr so far. */
  stderr(): string;
  /** Calls one unary RPC; rejects with the grpc error (it has `.code`). */
  call<T = Record<string, unknown>>(method: string, req: Record<string, unknown>): Promise<T>;
  /** The List stream, collected. */
  list(filters?: string[]): Promise<{ name: string; parent: string; kind: string; labels: Record<string, string> }[]>;
  /** SIGTERM and wait (the process stops gracefully); the dir stays. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function startSnapshotter(extra: Record<string, unknown> = {}, dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-snap-'))): Promise<TestSnapshotter> {
  const root = path.join(dir, 'root');
  const socket = path.join(dir, 'run', 'overlaybd.sock');
  const configFile = path.join(dir, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify({ root, address: socket, verbose: 'debug', ...extra }));
  const proc = spawnTool('overlaybd-snapshotter', [configFile]);
  trackChild(proc.child);
  let exited = false;
  proc.child.once('exit', () => (exited = true));
  await waitFor(() => exited || proc.stderr.includes('snapshotter.listening'), 'snapshotter socket', 60_000);
  if (exited) throw new Error(`overlaybd-snapshotter exited at start:\n${proc.stderr}`);

  const Client = serviceClient('snapshots');
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as Record<string, Function>;
  const call = <T,>(method: string, req: Record<string, unknown>) =>
    new Promise<T>((resolve, reject) => client[method]!.call(client, req, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res))));
  const list: TestSnapshotter['list'] = (filters = []) =>
    new Promise((resolve, reject) => {
      const out: Awaited<ReturnType<TestSnapshotter['list']>> = [];
      const stream = client.List!.call(client, { filters }) as grpc.ClientReadableStream<{ info: typeof out }>;
      stream.on('data', (m: { info: typeof out }) => out.push(...m.info));
      stream.on('error', reject);
      stream.on('end', () => resolve(out));
    });
  const kill = async () => {
    (client as unknown as grpc.Client).close();
    if (!exited) await stopChild(proc.child, 15_000);
  };
  return {
    dir,
    root,
    socket,
    configFile,
    child: proc.child,
    stderr: () => proc.stderr,
    call,
    list,
    kill,
    stop: async () => {
      await kill();
      for (const m of mountsUnder(dir)) {
        try {
          execFileSync('umount', ['-l', m]);
        } catch {
          /* gone */
        }
      }
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/** A busybox OCI image tar (sh, echo, ls, cat) whose command prints `hello from busybox`. */
export function busyboxImageTar(dir: string): string {
  const layout = path.join(dir, 'oci');
  const bundle = path.join(dir, 'bundle');
  const run = (args: string[]) => execFileSync('umoci', args, { cwd: dir, stdio: 'pipe' });
  run(['init', '--layout', layout]);
  run(['new', '--image', `${layout}:latest`]);
  run(['unpack', '--image', `${layout}:latest`, bundle]);
  const bin = path.join(bundle, 'rootfs', 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(bin, 'busybox'));
  fs.chmodSync(path.join(bin, 'busybox'), 0o755);
  for (const a of ['sh', 'echo', 'ls', 'cat', 'mount', 'head']) fs.symlinkSync('busybox', path.join(bin, a));
  fs.mkdirSync(path.join(bundle, 'rootfs', 'tmp'), { mode: 0o1777 });
  run(['repack', '--image', `${layout}:latest`, bundle]);
  run(['config', '--image', `${layout}:latest`, '--config.cmd', '/bin/sh', '--config.cmd', '-c', '--config.cmd', 'echo hello from busybox', '--config.env', 'PATH=/bin', '--architecture', 'amd64', '--os', 'linux']);
  const tar = path.join(dir, 'busybox-oci.tar');
  execFileSync('tar', ['-C', layout, '-cf', tar, '.']);
  return tar;
}
