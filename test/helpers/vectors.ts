/** Paths to the upstream-made test vectors in ../shared/vectors (beside the checkout). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const VECTORS = path.resolve(ROOT, '../shared/vectors');

export function vector(rel: string): string {
  return path.join(VECTORS, rel);
}

/** A fresh temp directory, removed by the returned cleanup function. */
export function tempDir(prefix = 'obd-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The stacks of expected/devices.sha256: [sha256, size, lowers, upper?]. */
export function deviceStacks(): { sha256: string; size: number; lowers: string[]; upper?: { data: string; index: string } }[] {
  const text = fs.readFileSync(vector('expected/devices.sha256'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => {
      const [sha256, size, ...layers] = l.trim().split(/\s+/) as [string, string, ...string[]];
      const lowers: string[] = [];
      let upper: { data: string; index: string } | undefined;
      for (const layer of layers) {
        if (layer.startsWith('upper=')) {
          const [data, index] = layer.slice('upper='.length).split('+') as [string, string];
          upper = { data: vector(data), index: vector(index) };
        } else {
          lowers.push(vector(layer));
        }
      }
      return { sha256, size: Number(size), lowers, ...(upper ? { upper } : {}) };
    });
}
