/**
 * Boots a Debian kernel in qemu (TCG: no usable KVM here) with the host root
 * shared read-only over 9p and runs one bash script as root in a chroot of
 * it, so host binaries (node, the repo's code, fio...) run under the guest
 * kernel: 6.1 has target_core_user and tcm_loop, 6.12 also has ublk_drv.
 * One boot costs seconds, so batch many checks into one script.
 * Kernels and initramfs come from scripts/guest/prepare.sh (Debian packages,
 * cached); scripts/guest/README.md says what the guest provides.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stopChild, trackChild } from './registry.js';

export type GuestKernel = '6.1' | '6.12';

export interface GuestOptions {
  kernel: GuestKernel;
  /** Bash source, run by the host's /bin/bash in the chroot with cwd = this process's cwd. */
  script: string;
  /** qemu is killed after this long (boot included) and runInGuest rejects. */
  timeoutMs: number;
  /**
   * Host dir mounted read-write at the same path in the guest (also $GUEST_SHARE),
   * kept afterwards so the script can leave results there. Default: a temp dir,
   * removed after the run. The guest's /tmp is a private tmpfs either way.
   */
  shareDir?: string;
}

export interface GuestResult {
  /** The script's exit status. */
  code: number;
  /** The script's stdout and stderr, interleaved. */
  stdout: string;
  /** The serial console: kernel messages and the init's marker lines. */
  console: string;
  /** Wall time of the qemu run, boot and poweroff included. */
  ms: number;
}

const run = promisify(execFile);
const guestDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/guest');

/** Where kernels and initramfs are cached: $OBD_GUEST_CACHE, else /var/cache as root, else tmpdir. */
export function guestCacheDir(): string {
  if (process.env.OBD_GUEST_CACHE) return process.env.OBD_GUEST_CACHE;
  return process.getuid?.() === 0 ? '/var/cache/overlaybd-test' : path.join(os.tmpdir(), 'overlaybd-test');
}

const prepared = new Map<GuestKernel, Promise<{ vmlinuz: string; initrd: string }>>();

/** Fetches the kernel and builds its initramfs once per process (the scripts cache across runs). */
export function prepareGuest(kernel: GuestKernel): Promise<{ vmlinuz: string; initrd: string }> {
  let p = prepared.get(kernel);
  if (!p) {
    p = run('bash', [path.join(guestDir, 'prepare.sh'), kernel, guestCacheDir()], { timeout: 600_000 }).then(({ stdout }) => {
      const [vmlinuz, initrd] = stdout.trim().split(' ');
      if (!vmlinuz || !initrd) throw new Error(`prepare.sh ${kernel} printed ${JSON.stringify(stdout)}`);
      return { vmlinuz, initrd };
    });
    p.catch(() => prepared.delete(kernel));
    prepared.set(kernel, p);
  }
  return p;
}

let compiled: string | undefined;

/**
 * Copies the files of `from` that differ into `to` (each by a rename, so a
 * reader sees the old file or the new one whole) and removes `from`. A
 * guest of another test reading build/guest-js meanwhile never sees a file
 * rewritten under it.
 */
function syncTree(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const [src, dst] = [path.join(from, e.name), path.join(to, e.name)];
    if (e.isDirectory()) syncTree(src, dst);
    else if (!fs.existsSync(dst) || !fs.readFileSync(src).equals(fs.readFileSync(dst))) fs.renameSync(src, dst);
  }
  fs.rmSync(from, { recursive: true, force: true });
}

/**
 * The repo's lib compiled to JavaScript under build/guest-js (once per
 * process): tsx costs a minute per node process under TCG. Returns the
 * dir of the CLI scripts (overlaybd.js, overlaybd-tcmu.js).
 */
export function compileForGuest(): string {
  const repo = path.resolve(guestDir, '../..');
  if (!compiled) {
    const out = path.join(repo, `build/guest-js.${process.pid}.tmp`);
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json', '--outDir', out, '--declaration', 'false', '--sourceMap', 'false'], {
      cwd: repo,
      stdio: 'inherit',
    });
    syncTree(out, path.join(repo, 'build/guest-js'));
    compiled = path.join(repo, 'build/guest-js/lib/cli');
  }
  return compiled;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

export async function runInGuest(o: GuestOptions): Promise<GuestResult> {
  const { vmlinuz, initrd } = await prepareGuest(o.kernel);
  const share = o.shareDir ? path.resolve(o.shareDir) : fs.mkdtempSync(path.join(os.tmpdir(), 'obd-guest-'));
  // The path travels on the kernel command line, which splits on whitespace.
  if (/\s/.test(share)) throw new Error(`guest share dir must not contain whitespace: ${share}`);
  const file = (name: string) => path.join(share, `.guest-${name}`);
  try {
    fs.rmSync(file('rc'), { force: true });
    fs.writeFileSync(file('out.log'), '');
    fs.writeFileSync(file('script.sh'), o.script);
    fs.writeFileSync(
      file('run.sh'),
      [
        'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8',
        `export GUEST_SHARE=${shellQuote(share)}`,
        // Knobs for guest scripts (say OBD_GUEST_LOOP_S for a longer leak loop) pass through.
        ...Object.entries(process.env)
          .filter(([k]) => /^OBD_GUEST_\w+$/.test(k))
          .map(([k, v]) => `export ${k}=${shellQuote(v ?? '')}`),
        `cd ${shellQuote(process.cwd())} || exit 125`,
        `exec /bin/bash ${shellQuote(file('script.sh'))}`,
        '',
      ].join('\n'),
    );
    const virtfs = (dir: string, tag: string, ro: boolean) =>
      `local,path=${dir},mount_tag=${tag},security_model=none,multidevs=remap${ro ? ',readonly=on' : ''}`;
    const args = [
      ...['-accel', 'tcg', '-cpu', 'max', '-m', '2048', '-smp', '2', '-net', 'none', '-nographic', '-no-reboot'],
      ...['-kernel', vmlinuz, '-initrd', initrd],
      ...['-virtfs', virtfs('/', 'hostroot', true), '-virtfs', virtfs(share, 'share', false)],
      ...['-append', `console=ttyS0 quiet panic=-1 obd.share=${share}`],
    ];
    const start = Date.now();
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(qemu);
    let consoleText = '';
    qemu.stdout.setEncoding('utf8').on('data', (d: string) => (consoleText += d));
    qemu.stderr.setEncoding('utf8').on('data', (d: string) => (consoleText += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void stopChild(qemu, 0);
    }, o.timeoutMs);
    const status = await new Promise<number | null>((resolve, reject) => {
      qemu.once('error', reject);
      qemu.once('close', (c) => resolve(c));
    }).finally(() => clearTimeout(timer));
    const ms = Date.now() - start;
    const stdout = fs.readFileSync(file('out.log'), 'utf8');
    const rc = fs.existsSync(file('rc')) ? fs.readFileSync(file('rc'), 'utf8').trim() : '';
    const what = () => `\n--- script output (tail) ---\n${tail(stdout)}\n--- console (tail) ---\n${tail(consoleText)}`;
    if (timedOut) throw new Error(`guest ${o.kernel} timed out after ${o.timeoutMs} ms${what()}`);
    if (!/^\d+$/.test(rc)) throw new Error(`guest ${o.kernel}: qemu exited with ${status} and no script status${what()}`);
    return { code: Number(rc), stdout, console: consoleText, ms };
  } finally {
    if (!o.shareDir) fs.rmSync(share, { recursive: true, force: true });
  }
}
