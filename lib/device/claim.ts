import fs from 'node:fs';
import { OverlaybdError } from '../errors.js';

/** EBUSY when something holds the block device exclusively (a mount, another claim). */
export function assertNotClaimed(dev: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dev, fs.constants.O_RDONLY | fs.constants.O_EXCL);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EBUSY') throw new OverlaybdError('EBUSY', `${dev} is in use (mounted?): unmount it before detach`);
    if (err.code === 'ENOENT' || err.code === 'ENXIO') return;
    throw new OverlaybdError('EIO', `cannot open ${dev}: ${err.message}`, { cause: e });
  }
  fs.closeSync(fd);
}
