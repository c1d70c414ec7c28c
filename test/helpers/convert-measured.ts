/**
 * Runs the `convertor` CLI as a child under GNU time, for the peak RSS of a
 * whole conversion (download, apply, commit, upload): the kernel's
 * ru_maxrss of the process, native threads included.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { toolArgs } from './cli.js';
import { ROOT } from './vectors.js';

export interface MeasuredConversion {
  /** Peak resident set of the convertor process, MiB. */
  peakRssMB: number;
  wallS: number;
  stderr: string;
}

/** Converts `registryHost/repo:tag` into `:outTag` (plain HTTP, no dedup store) in `workDir`. */
export async function convertMeasured(registryHost: string, repo: string, tag: string, outTag: string, workDir: string, extra: string[] = []): Promise<MeasuredConversion> {
  fs.mkdirSync(workDir, { recursive: true });
  const timeFile = path.join(workDir, '..', `time-${path.basename(workDir)}.txt`);
  const args = ['-f', '%M %e', '-o', timeFile, process.execPath, ...toolArgs('convertor'),
    '-r', `${registryHost}/${repo}`, '-i', tag, '--overlaybd', outTag, '--plain', '--db-type', 'none', '-d', workDir, ...extra];
  const stderr = await new Promise<string>((resolve, reject) => {
    execFile('/usr/bin/time', args, { cwd: ROOT, timeout: 3_600_000, maxBuffer: 64 << 20 }, (err, _out, errText) => {
      if (err) reject(new Error(`convertor failed (${err.message}): ${errText.slice(-2000)}`));
      else resolve(errText);
    });
  });
  const [kb, secs] = fs.readFileSync(timeFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  fs.rmSync(timeFile, { force: true });
  return { peakRssMB: Math.round(kb! / 1024), wallS: secs!, stderr };
}

/**
 * Appends measured figures to the JSON-lines file named by OBD_SCALE_FIGURES
 * (set by `npm run bench -- convert scale`, which runs the scale tests and
 * prints what they measured); a no-op otherwise.
 */
export function recordFigures(figures: Record<string, number | string>): void {
  const file = process.env.OBD_SCALE_FIGURES;
  if (file) fs.appendFileSync(file, JSON.stringify(figures) + '\n');
}
