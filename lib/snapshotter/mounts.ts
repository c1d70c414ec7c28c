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

/** An overlay (or bind) of lower dirs, nearest first, under a snapshot's fs/ dir; an overlaybd layer's lower is its block mountpoint. */
export function normalMounts(kind: Kind, fsDir: string, workDir: string, lowers: string[]): Mount[] {
  if (lowers.length === 0) return [bind(fsDir, kind === 'VIEW')];
  if (kind === 'VIEW' && lowers.length === 1) return [bind(lowers[0]!, true)];
  const options = [...overlayIndexOff()];
  if (kind === 'ACTIVE') options.push(`workdir=${workDir}`, `upperdir=${fsDir}`);
  options.push(`lowerdir=${lowers.join(':')}`);
  return [{ type: 'overlay', source: 'overlay', options }];
}
