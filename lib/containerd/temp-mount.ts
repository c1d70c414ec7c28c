/**
 * A snapshot's mounts, mounted read-only on a private temporary directory
 * for the time of one callback, as containerd's mount.WithTempMount does
 * when its client reads a rootfs (the image user's /etc/passwd).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { OverlaybdError } from '../errors.js';
import type { Mount } from './snapshots.js';

const execFileP = promisify(execFile);

/** mount(8)'s arguments for one containerd mount on `target`. */
function mountArgs(m: Mount, target: string): string[] {
  const options = m.options.length > 0 ? ['-o', m.options.join(',')] : [];
  // "bind" is no filesystem type: the bind or rbind option says it all.
  return [...(m.type === 'bind' ? [] : ['-t', m.type]), ...options, m.source, target];
}

/** containerd's tryReadonlyMounts: a lone overlay gets `ro` (binds keep their own options). */
function readonly(mounts: Mount[]): Mount[] {
  if (mounts.length === 1 && mounts[0]!.type === 'overlay') return [{ ...mounts[0]!, options: [...mounts[0]!.options, 'ro'] }];
  return mounts;
}

export async function withTempMount<T>(mounts: Mount[], fn: (root: string) => T | Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-rootfs-'));
  let mounted = 0;
  try {
    for (const m of readonly(mounts)) {
      try {
        await execFileP('mount', mountArgs(m, dir));
      } catch (e) {
        const why = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
        throw new OverlaybdError('EIO', `cannot mount the container's rootfs (${m.type} ${m.source}) to read it: ${why}`, { cause: e });
      }
      mounted++;
    }
    return await fn(dir);
  } finally {
    for (; mounted > 0; mounted--) {
      // A lazy unmount if something still holds it: the directory must not stay mounted.
      await execFileP('umount', [dir]).catch(() => execFileP('umount', ['-l', dir]).catch(() => {}));
    }
    try {
      fs.rmdirSync(dir);
    } catch {
      // Still mounted: never removed recursively, which would reach the rootfs.
    }
  }
}
