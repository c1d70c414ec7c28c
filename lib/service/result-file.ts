/**
 * The `resultFile` of config.v1.json (docs/overlaybd-format.md §5.1): after
 * an image opens, upstream writes `success`, or `failed:<reason>`, with no
 * newline. Whoever polls it (the snapshotter) must never see a half-written
 * file, so it is written beside the target and renamed over it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { OverlaybdError } from '../errors.js';

export type OpenOutcome = { ok: true } | { ok: false; reason: string };

export function resultText(outcome: OpenOutcome): string {
  return outcome.ok ? 'success' : `failed:${outcome.reason}`;
}

export async function writeResultFile(file: string, outcome: OpenOutcome): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await fs.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(resultText(outcome));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    const err = e as NodeJS.ErrnoException;
    const code = err.code === 'ENOENT' ? 'ENOENT' : err.code === 'EACCES' || err.code === 'EPERM' ? 'EPERM' : 'EIO';
    throw new OverlaybdError(code, `cannot write result file ${file}: ${err.message}`, { cause: e });
  }
}
