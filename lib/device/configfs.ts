/**
 * The configfs side of a TCMU device, step for step as upstream's
 * snapshotter (docs/accelerated-container-image.md §1.6): a target_core_user
 * backstore `core/user_<HBA>/dev_<ID>` whose cfgstring names the
 * config.v1.json, exported through a tcm_loop LUN so the kernel makes a
 * SCSI disk of it; and the reverse. Nothing here serves the ring.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OverlaybdError } from '../errors.js';

export const TARGET = '/sys/kernel/config/target';
export const CORE = `${TARGET}/core`;
export const LOOPBACK = `${TARGET}/loopback`;
/** Upstream's HBA and NAA prefix with tenant -1. */
export const DEFAULT_HBA = 999999999;
export const DEFAULT_NAA_PREFIX = 199;
/** int32 max / 1000: the command and SCSI timeouts upstream sets (never). */
const NO_TIMEOUT = '2147483';

export interface TcmuNames {
  hba: number;
  devId: string;
  /** core/user_<hba>/dev_<id> */
  core: string;
  /** loopback/naa.<prefix><id padded to 13> */
  naa: string;
}

export function tcmuNames(hba: number, devId: string, naaPrefix = DEFAULT_NAA_PREFIX): TcmuNames {
  return {
    hba,
    devId,
    core: `${CORE}/user_${hba}/dev_${devId}`,
    naa: `${LOOPBACK}/naa.${naaPrefix}${devId.padStart(13, '0')}`,
  };
}

function write(file: string, value: string): void {
  try {
    fs.writeFileSync(file, value);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new OverlaybdError(err.code === 'EAGAIN' ? 'EAGAIN' : 'EIO', `write ${JSON.stringify(value)} to ${file}: ${err.message}`, { cause: e });
  }
}

/** ENOTSUP unless the kernel has target_core_user and tcm_loop loaded. */
export function assertTcmuKernel(): void {
  for (const [mod, what] of [['target_core_user', 'target_core_user (TCMU)'], ['tcm_loop', 'tcm_loop']] as const) {
    if (!fs.existsSync(`/sys/module/${mod}`))
      throw new OverlaybdError('ENOTSUP', `this kernel has no ${what} (/sys/module/${mod} is missing; modprobe ${mod}); use frontend 'fuse'`);
  }
  if (!fs.existsSync(CORE)) throw new OverlaybdError('ENOTSUP', `${CORE} is missing: mount configfs on /sys/kernel/config`);
}

/**
 * Steps 1-5: the backstore with cfgstring `overlaybd/<abs config>`, 4 MiB
 * of data area, enabled (EAGAIN retried), no command timeout. EEXIST when
 * dev_<id> is taken, so the caller can pick another id. Removes the
 * directory again when a later step fails.
 */
export async function createBackstore(n: TcmuNames, config: string): Promise<void> {
  fs.mkdirSync(path.dirname(n.core), { recursive: true });
  try {
    fs.mkdirSync(n.core);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new OverlaybdError('EEXIST', `${n.core} exists`);
    throw new OverlaybdError('EIO', `mkdir ${n.core}: ${(e as Error).message}`, { cause: e });
  }
  try {
    write(`${n.core}/control`, `dev_config=overlaybd/${config}`);
    write(`${n.core}/control`, 'max_data_area_mb=4');
    for (let i = 0; ; i++) {
      try {
        write(`${n.core}/enable`, '1');
        break;
      } catch (e) {
        if ((e as OverlaybdError).code !== 'EAGAIN' || i >= 100) throw e;
        await sleep(50);
      }
    }
    write(`${n.core}/attrib/cmd_time_out`, NO_TIMEOUT);
  } catch (e) {
    fs.rmdirSync(n.core);
    throw e;
  }
}

/** Step 6: the tcm_loop LUN linking the backstore (the kernel scans the disk here: its ring must be served). */
export function createLun(n: TcmuNames): void {
  const lun = `${n.naa}/tpgt_1/lun/lun_0`;
  fs.mkdirSync(lun, { recursive: true });
  write(`${n.naa}/tpgt_1/nexus`, path.basename(n.naa));
  fs.symlinkSync(n.core, `${lun}/dev_${n.devId}`);
}

/** Step 7: the /dev/sdX of the LUN (waiting for the SCSI scan), its timeout off; '' when none appears in `waitMs`. */
export async function findDisk(naa: string, waitMs = 30_000): Promise<string> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const dev = diskOf(naa);
    // The disk's sysfs entry shows before its device/timeout does.
    if (dev && fs.existsSync(`/sys/block/${dev}/device/timeout`)) {
      write(`/sys/block/${dev}/device/timeout`, NO_TIMEOUT);
      return `/dev/${dev}`;
    }
    if (Date.now() >= deadline) return '';
    await sleep(20);
  }
}

/** The block device name (sdX) of a tcm_loop target's LUN 0, or ''. */
export function diskOf(naa: string): string {
  try {
    const address = fs.readFileSync(`${naa}/tpgt_1/address`, 'utf8').trim();
    const [dev] = fs.readdirSync(`/sys/class/scsi_device/${address}:0/device/block`);
    return dev ?? '';
  } catch {
    return '';
  }
}

/** The tcm_loop targets with a LUN linked to backstore `core`, whoever made them. */
export function lunsOf(core: string): { naa: string; lun: string; link: string }[] {
  const out: { naa: string; lun: string; link: string }[] = [];
  for (const naa of readdir(LOOPBACK)) {
    for (const tpgt of readdir(`${LOOPBACK}/${naa}`).filter((d) => d.startsWith('tpgt_'))) {
      for (const lun of readdir(`${LOOPBACK}/${naa}/${tpgt}/lun`)) {
        const dir = `${LOOPBACK}/${naa}/${tpgt}/lun/${lun}`;
        for (const link of readdir(dir)) {
          try {
            if (path.resolve(dir, fs.readlinkSync(`${dir}/${link}`)) === core) out.push({ naa: `${LOOPBACK}/${naa}`, lun: dir, link: `${dir}/${link}` });
          } catch {
            // not a link (attributes)
          }
        }
      }
    }
  }
  return out;
}

function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function rmdirIf(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EBUSY')
      throw new OverlaybdError('EIO', `rmdir ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

/** Upstream's DetachDevice for every LUN of `core`: the link, lun_0, tpgt_1, the naa (the SCSI disk goes away here). */
export function removeLuns(core: string): void {
  for (const l of lunsOf(core)) {
    fs.unlinkSync(l.link);
    rmdirIf(l.lun);
    for (const tpgt of readdir(l.naa).filter((d) => d.startsWith('tpgt_'))) {
      if (readdir(`${l.naa}/${tpgt}/lun`).length === 0) rmdirIf(`${l.naa}/${tpgt}`);
    }
    rmdirIf(l.naa);
  }
}

/** Removes the backstore (its UIO device goes away) and its user_<hba> when that is left empty. */
export function removeBackstore(core: string): void {
  rmdirIf(core);
  rmdirIf(path.dirname(core));
}
