/**
 * File-by-file comparison of a converted image against its source: the
 * source layers are extracted with GNU tar and merged (whiteouts applied)
 * into the expected tree; the overlaybd stack is dumped to a raw file and
 * loop-mounted read-only. Needs root (mount, and tar keeping owners).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../lib/image.js';

/** Extracts layer tars (plain or gzip) in order into `dir`, applying OCI whiteouts. */
export function mergeLayers(tars: string[], dir: string, scratch: string): void {
  fs.mkdirSync(dir, { recursive: true });
  tars.forEach((tarFile, i) => {
    const layer = path.join(scratch, `extract-${i}`);
    fs.mkdirSync(layer, { recursive: true });
    execFileSync('tar', ['-xpf', tarFile, '-C', layer, '--numeric-owner'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const walk = (rel: string) => {
      for (const name of fs.readdirSync(path.join(layer, rel))) {
        const r = path.join(rel, name);
        const st = fs.lstatSync(path.join(layer, r));
        if (name === '.wh..wh..opq') {
          const target = path.join(dir, rel);
          if (fs.existsSync(target)) for (const c of fs.readdirSync(target)) fs.rmSync(path.join(target, c), { recursive: true, force: true });
          fs.rmSync(path.join(layer, r));
        } else if (name.startsWith('.wh.')) {
          fs.rmSync(path.join(dir, rel, name.slice(4)), { recursive: true, force: true });
          fs.rmSync(path.join(layer, r));
        } else if (st.isDirectory()) {
          // A directory replacing a non-directory of a lower layer.
          const t = path.join(dir, r);
          if (fs.existsSync(t) && !fs.lstatSync(t).isDirectory()) fs.rmSync(t);
          walk(r);
        } else {
          const t = path.join(dir, r);
          if (fs.existsSync(t) && fs.lstatSync(t).isDirectory()) fs.rmSync(t, { recursive: true });
        }
      }
    };
    walk('.');
    execFileSync('cp', ['-a', `${layer}/.`, `${dir}/`]);
    fs.rmSync(layer, { recursive: true, force: true });
  });
}

export interface MountedDevice {
  dir: string;
  close(): void;
}

/** Dumps the stack `lowers` (bottom first) to a raw file and mounts it read-only. */
export async function mountStack(lowers: string[], scratch: string): Promise<MountedDevice> {
  fs.mkdirSync(scratch, { recursive: true });
  const raw = path.join(scratch, 'device.raw');
  const mnt = path.join(scratch, 'mnt');
  fs.mkdirSync(mnt, { recursive: true });
  const img = await openImage({ lowers });
  const fd = fs.openSync(raw, 'w');
  try {
    await img.dump(fd);
  } finally {
    fs.closeSync(fd);
    await img.close();
  }
  execFileSync('mount', ['-t', 'ext4', '-o', 'ro,loop,noload', raw, mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
  return {
    dir: mnt,
    close() {
      try {
        execFileSync('umount', [mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
      } finally {
        fs.rmSync(raw, { force: true });
      }
    },
  };
}

interface Node {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha?: string;
  link?: string;
  mtime?: number;
  nlink?: number;
  rdev?: number;
}

function describe(file: string): Node {
  const st = fs.lstatSync(file);
  const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (st.isFile()) {
    return {
      type: 'file',
      ...base,
      size: st.size,
      sha: createHash('sha256').update(fs.readFileSync(file)).digest('hex'),
      mtime: Math.floor(st.mtimeMs / 1000),
      nlink: st.nlink,
    };
  }
  if (st.isSymbolicLink()) return { type: 'symlink', ...base, mode: 0, link: fs.readlinkSync(file) };
  if (st.isDirectory()) return { type: 'dir', ...base };
  if (st.isCharacterDevice() || st.isBlockDevice()) return { type: st.isCharacterDevice() ? 'chr' : 'blk', ...base, rdev: st.rdev };
  if (st.isFIFO()) return { type: 'fifo', ...base };
  return { type: 'other', ...base };
}

function listTree(root: string, skip: Set<string>): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip.has(r)) continue;
      const n = describe(path.join(root, r));
      out.set(r, n);
      if (n.type === 'dir') walk(r);
    }
  };
  walk('');
  return out;
}

/** Differences between two trees, as readable lines (empty when they hold the same files). */
export function compareTrees(expected: string, actual: string, skipInActual: string[] = ['lost+found']): string[] {
  const a = listTree(expected, new Set());
  const b = listTree(actual, new Set(skipInActual));
  const diffs: string[] = [];
  for (const [p, n] of a) {
    const m = b.get(p);
    if (!m) diffs.push(`missing: ${p}`);
    else if (JSON.stringify(n) !== JSON.stringify(m)) diffs.push(`differs: ${p}: want ${JSON.stringify(n)} got ${JSON.stringify(m)}`);
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`extra: ${p}`);
  return diffs;
}
