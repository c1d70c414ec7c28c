/**
 * Helpers for the ext4 apply tests: e2fsck, read-only loop mounts that are
 * always undone, the file-level tree model of ext4_tree.py and its diff.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './native-tools.js';

const TREE_PY = path.join(repoRoot, 'test', 'helpers', 'ext4_tree.py');

/** `e2fsck -fn`: returns its exit code and output (0 = clean). */
export function fsck(img: string): { code: number; out: string } {
  const r = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

const mounts = new Set<string>();

/** Mounts `img` read-only on a fresh directory, runs fn, always unmounts. */
export async function withMount<T>(img: string, fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-ext4-mnt-'));
  // noload: never replay or touch the journal of the image under test.
  execFileSync('mount', ['-t', 'ext4', '-o', 'ro,loop,noload', img, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  mounts.add(dir);
  try {
    return await fn(dir);
  } finally {
    unmount(dir);
  }
}

function unmount(dir: string): void {
  // -d frees the loop device with the mount.
  spawnSync('umount', ['-d', dir], { stdio: 'ignore' });
  if (!spawnSync('mountpoint', ['-q', dir]).status) spawnSync('umount', ['-l', '-d', dir], { stdio: 'ignore' });
  mounts.delete(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Undoes any mount a failed test left behind (call in afterAll). */
export function unmountAll(): void {
  for (const d of [...mounts]) unmount(d);
}

export interface TreeNode {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as a decimal string (exact). */
  mtime: string | null;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: [number, number];
  xattrs: Record<string, string>;
}
export interface TreeView {
  tree: Record<string, TreeNode>;
  links: string[][];
}

function runTree(args: string[]): TreeView {
  const r = spawnSync('python3', [TREE_PY, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`ext4_tree.py ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as TreeView;
}

/** What the layer tars, applied in order, must produce. */
export function modelTree(tars: string[]): TreeView {
  return runTree(['model', ...tars]);
}

/** The tree under a mounted directory (lost+found left out). */
export function walkTree(dir: string): TreeView {
  return runTree(['walk', dir]);
}

export interface DiffOptions {
  /** Paths whose mtime is not compared. */
  skipMtime?: Set<string>;
  /** How the lines name the two sides. */
  names?: [want: string, got: string];
}

/** Differences as readable lines; fields the model leaves null are not compared. */
export function diffTrees(want: TreeView, got: TreeView, opts: DiffOptions = {}): string[] {
  const [w0, g0] = opts.names ?? ['want', 'got'];
  const out: string[] = [];
  for (const [p, w] of Object.entries(want.tree)) {
    const g = got.tree[p];
    if (!g) {
      out.push(`missing: /${p}`);
      continue;
    }
    for (const k of Object.keys(w) as (keyof TreeNode)[]) {
      if (w[k] === null || (k === 'mtime' && opts.skipMtime?.has(p))) continue;
      if (JSON.stringify(w[k]) !== JSON.stringify(g[k])) out.push(`/${p}: ${k}: ${w0} ${JSON.stringify(w[k])} ${g0} ${JSON.stringify(g[k])}`);
    }
  }
  for (const p of Object.keys(got.tree)) if (!(p in want.tree)) out.push(`extra: /${p}`);
  if (JSON.stringify(want.links) !== JSON.stringify(got.links))
    out.push(`hard links: ${w0} ${JSON.stringify(want.links)} ${g0} ${JSON.stringify(got.links)}`);
  return out;
}

/** Runs a Python snippet that writes a tar to argv[1] (tarfile imported as `tarfile`, io as `io`). */
export function pythonTar(out: string, body: string): string {
  const script = `import io, sys, tarfile\nout = sys.argv[1]\n${body}\n`;
  const r = spawnSync('python3', ['-c', script, out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python tar generation failed: ${r.stderr}`);
  return out;
}
