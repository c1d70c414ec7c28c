/**
 * Starts Debian's containerd 1.6 (with runc) as a private instance: its own
 * root, state, socket and config in a temp dir, the CRI plugin off, and any
 * proxy snapshotters given (name -> unix socket), as environment.md §3 does.
 * `ctr()` runs Debian's `ctr` against it. `stop()` kills the tasks' shims and
 * containerd, unmounts what is left under the dir and removes it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { trackChild } from './registry.js';
import { waitFor } from './cli.js';

const execFileP = promisify(execFile);

export interface ContainerdOptions {
  /** Proxy snapshotter plugins: name -> unix socket path. */
  proxySnapshotters?: Record<string, string>;
  /** Registry hosts reached over plain HTTP (`host:port`), written as hosts.toml under a certs.d dir. */
  plainHttpRegistries?: string[];
}

export interface TestContainerd {
  dir: string;
  socket: string;
  root: string;
  state: string;
  logFile: string;
  /** The hosts dir to give `ctr --hosts-dir` (holds the plain-HTTP registries). */
  hostsDir: string;
  /** Runs `ctr -a <socket> ...args`; rejects with stdout+stderr on a non-zero exit. */
  ctr(args: string[], opts?: { timeoutMs?: number; namespace?: string }): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

function configToml(dir: string, opts: ContainerdOptions): string {
  const proxies = Object.entries(opts.proxySnapshotters ?? {})
    .map(([name, sock]) => `  [proxy_plugins.${name}]\n    type = "snapshot"\n    address = "${sock}"\n`)
    .join('');
  return [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${dir}/containerd.sock"`,
    '[ttrpc]',
    `  address = "${dir}/containerd.sock.ttrpc"`,
    '[debug]',
    '  level = "info"',
    '[proxy_plugins]',
    proxies,
  ].join('\n');
}

/** Pids of processes whose command line mentions `needle` (the shims name our socket). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

export async function startContainerd(opts: ContainerdOptions = {}): Promise<TestContainerd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-containerd-'));
  const socket = path.join(dir, 'containerd.sock');
  const hostsDir = path.join(dir, 'certs.d');
  for (const host of opts.plainHttpRegistries ?? []) {
    fs.mkdirSync(path.join(hostsDir, host), { recursive: true });
    fs.writeFileSync(path.join(hostsDir, host, 'hosts.toml'), `server = "http://${host}"\n[host."http://${host}"]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n`);
  }
  fs.writeFileSync(path.join(dir, 'config.toml'), configToml(dir, opts));
  const logFile = path.join(dir, 'containerd.log');
  const log = fs.openSync(logFile, 'a');
  const child: ChildProcess = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  trackChild(child);
  let exited = false;
  child.once('exit', () => (exited = true));
  await waitFor(() => exited || fs.existsSync(socket), 'containerd socket', 30_000);
  if (exited) throw new Error(`containerd exited at start:\n${fs.readFileSync(logFile, 'utf8')}`);

  const ctr: TestContainerd['ctr'] = async (args, o = {}) => {
    try {
      const r = await execFileP('ctr', ['-a', socket, '-n', o.namespace ?? 'default', ...args], {
        timeout: o.timeoutMs ?? 120_000,
        maxBuffer: 64 << 20,
      });
      return { stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`ctr ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  };
  for (let i = 0; ; i++) {
    try {
      await ctr(['version'], { timeoutMs: 10_000 });
      break;
    } catch (e) {
      if (i > 50 || exited) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const stop = async (): Promise<void> => {
    // Shims outlive containerd by design; they are ours when they name our socket.
    for (const pid of pidsMentioning(socket)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (!exited) {
      child.kill('SIGTERM');
      await waitFor(() => exited, 'containerd exit', 15_000).catch(() => child.kill('SIGKILL'));
    }
    for (const m of mountsUnder(dir)) await execFileP('umount', ['-l', m]).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  return { dir, socket, root: path.join(dir, 'root'), state: path.join(dir, 'state'), logFile, hostsDir, ctr, stop };
}
