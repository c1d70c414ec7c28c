/**
 * What the device service must remember across a crash: one record per
 * attached device, rewritten (atomically) after each attach and detach. A
 * service starting after a SIGKILL reads it and re-attaches what it can
 * (ublk takes over the kernel device that outlived its server).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { OverlaybdError } from '../errors.js';
import type { Frontend } from './attach.js';

export interface DeviceRecord {
  id: string;
  frontend: Frontend;
  /** config.v1.json, absolute. */
  config: string;
  /** The block device path. */
  path: string;
  /** ublk: N of /dev/ublkbN. */
  devId?: number;
}

const RecordSchema = z.object({
  id: z.string().min(1),
  frontend: z.enum(['fuse', 'tcmu', 'ublk']),
  config: z.string().min(1),
  path: z.string().min(1),
  devId: z.number().int().min(0).optional(),
});
const FileSchema = z.object({ version: z.literal(1), devices: z.array(RecordSchema) });

/** The state file next to a control socket: /run/overlaybd/overlaybd.sock → overlaybd.devices.json. */
export function stateFileFor(socket: string): string {
  return path.join(path.dirname(socket), `${path.basename(socket, '.sock')}.devices.json`);
}

/** The records in `file`; none when it does not exist. A damaged file is CONFIG_INVALID naming it. */
export function readDeviceState(file: string): DeviceRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new OverlaybdError('EIO', `cannot read device state ${file}: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `device state ${file} is not JSON: ${(e as Error).message}`);
  }
  const r = FileSchema.safeParse(json);
  if (!r.success) throw new OverlaybdError('CONFIG_INVALID', `device state ${file}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data.devices.map((d) => ({ ...d }) as DeviceRecord);
}

/** Replaces `file` with `records` (write to a temp file, fsync, rename). */
export function writeDeviceState(file: string, records: DeviceRecord[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify({ version: 1, devices: records }, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
