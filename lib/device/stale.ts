/**
 * What a device service killed without detaching leaves under its run dir,
 * cleaned up at the next start. When the FUSE server dies the kernel aborts
 * its connection: the mount stays (every access fails with ENOTCONN) and the
 * loop devices backed by its files fail their I/O with EIO. Nothing of that
 * can serve again, so the new service detaches those loop devices (a mounted
 * one is only marked autoclear: it goes away when its user unmounts it),
 * unmounts the dead FUSE mounts lazily and removes their mount points.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../log.js';

const run = promisify(execFile);

export interface StaleLoop {
  path: string;
  backFile: string;
  /** Something held it (a mounted filesystem): left to detach itself on its last close. */
  inUse: boolean;
}

export interface StaleReport {
  loops: StaleLoop[];
  mounts: string[];
  dirs: string[];
  /** Steps that failed, each naming what it was for. */
  errors: string[];
}

const under = (dir: string, p: string) => p.startsWith(dir + '/');

/** Loop devices whose backing file is under `dir` (losetup reads sysfs: full paths). */
async function loopsUnder(dir: string): Promise<{ path: string; backFile: string }[]> {
  const { stdout } = await run('losetup', ['--json', '--list', '--output', 'NAME,BACK-FILE']);
  if (!stdout.trim()) return [];
  const j = JSON.parse(stdout) as { loopdevices?: { name: string; 'back-file'?: string | null }[] };
  return (j.loopdevices ?? [])
    .map((l) => ({ path: l.name, backFile: (l['back-file'] ?? '').replace(/ \(deleted\)$/, '') }))
    .filter((l) => under(dir, l.backFile));
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Mount points under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter((m) => under(dir, m))
    .sort((a, b) => b.length - a.length);
}

/** True when the block device is claimed exclusively (mounted, or held by another driver). */
function claimed(dev: string): boolean {
  try {
    fs.closeSync(fs.openSync(dev, fs.constants.O_RDONLY | fs.constants.O_EXCL));
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EBUSY';
  }
}

function message(e: unknown): string {
  const err = e as Error & { stderr?: string };
  return (err.stderr || err.message).trim();
}

/**
 * Cleans `runDir` of the devices of a service that is gone. Only the owner
 * of runDir may call it (the service holding the control socket it belongs
 * to). Never throws for one step: failures are collected and logged.
 */
export async function cleanStaleDevices(runDir: string, log: Logger): Promise<StaleReport> {
  const report: StaleReport = { loops: [], mounts: [], dirs: [], errors: [] };
  if (!fs.existsSync(runDir)) return report;
  const dir = fs.realpathSync(runDir);
  const fail = (what: string, e: unknown) => {
    report.errors.push(`${what}: ${message(e)}`);
    log.warn('service.stale_cleanup_failed', { what, error: message(e) });
  };

  // Loop devices first: each holds its FUSE file open, which keeps the dead connection.
  let loops: { path: string; backFile: string }[] = [];
  try {
    loops = await loopsUnder(dir);
  } catch (e) {
    fail('losetup --list', e);
  }
  for (const l of loops) {
    const inUse = claimed(l.path);
    try {
      // On a device still open, LOOP_CLR_FD sets autoclear instead of failing.
      await run('losetup', ['--detach', l.path]);
      report.loops.push({ ...l, inUse });
      log.warn('service.stale_loop', { device: l.path, backFile: l.backFile, inUse });
    } catch (e) {
      fail(`losetup --detach ${l.path}`, e);
    }
  }

  for (const m of mountsUnder(dir)) {
    try {
      // Lazy: the mount leaves the namespace now, even while a loop device still holds a file on it.
      if (process.getuid?.() === 0) await run('umount', ['--lazy', m]);
      else await run('fusermount3', ['-u', '-z', m]);
      report.mounts.push(m);
      log.warn('service.stale_mount', { mount: m });
    } catch (e) {
      fail(`unmount ${m}`, e);
    }
  }

  // The mount points attachDevice made (fuse-<id>); anything else is not ours.
  for (const name of fs.readdirSync(dir).filter((n) => n.startsWith('fuse-'))) {
    const p = path.join(dir, name);
    try {
      if (!fs.lstatSync(p).isDirectory()) continue;
      fs.rmdirSync(p);
      report.dirs.push(p);
    } catch (e) {
      fail(`rmdir ${p}`, e);
    }
  }
  if (report.loops.length || report.mounts.length || report.dirs.length || report.errors.length) {
    log.warn('service.stale_cleaned', {
      runDir: dir,
      loops: report.loops.length,
      loopsInUse: report.loops.filter((l) => l.inUse).map((l) => l.path),
      mounts: report.mounts.length,
      dirs: report.dirs.length,
      errors: report.errors.length,
    });
  }
  return report;
}
