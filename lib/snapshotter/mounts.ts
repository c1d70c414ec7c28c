/**
 * The mounts a snapshot answers with (accelerated-container-image.md §1.4
 * "Mount shapes"). Pure functions of paths and kinds.
 */
import fs from 'node:fs';
import type { Kind } from './metastore.js';

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** `index=off` when the kernel's overlay has an index parameter (probed once, as upstream at start). */
let indexOff: boolean | undefined;
export function overlayIndexOff(): string[] {
  indexOff ??= fs.existsSync('/sys/module/overlay/parameters/index');
  return indexOff ? ['index=off'] : [];
}

export function bind(source: string, ro: boolean): Mount {
  return { type: 'bind', source, options: [ro ? 'ro' : 'rw', 'rbind'] };
}

/** normal storage: `fsOf(id)` is a snapshot's fs/ dir, parentIds nearest first. */
export function normalMounts(kind: Kind, fsDir: string, workDir: string, parentFs: string[]): Mount[] {
  if (parentFs.length === 0) return [bind(fsDir, kind === 'VIEW')];
  if (kind === 'VIEW' && parentFs.length === 1) return [bind(parentFs[0]!, true)];
  const options = [...overlayIndexOff()];
  if (kind === 'ACTIVE') options.push(`workdir=${workDir}`, `upperdir=${fsDir}`);
  options.push(`lowerdir=${parentFs.join(':')}`);
  return [{ type: 'overlay', source: 'overlay', options }];
}

/** An overlay whose lower is a parent's block mountpoint (rwMode overlayfs). */
export function overlayOnBlock(kind: Kind, fsDir: string, workDir: string, lowerMountpoint: string): Mount[] {
  if (kind === 'VIEW') return [bind(lowerMountpoint, true)];
  return [{ type: 'overlay', source: 'overlay', options: [...overlayIndexOff(), `workdir=${workDir}`, `upperdir=${fsDir}`, `lowerdir=${lowerMountpoint}`] }];
}
