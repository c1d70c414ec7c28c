/**
 * The TCMU frontend's handler side: a target_core_user UIO device whose
 * name is `tcm-user/<hba>/<dev>/overlaybd/<config path>[;<id>]` is served
 * by a native thread (cpp/frontend/tcmu/device.h) over the image that
 * config.v1.json describes. Devices come two ways: attachTcmu makes one
 * with upstream's configfs steps (configfs.ts), and discoverTcmu picks up
 * the ones somebody else made (upstream's snapshotter, or this service
 * before a restart: the kernel device stayed, the new handler takes over
 * its ring).
 */
import fs from 'node:fs';
import { randomInt } from 'node:crypto';
import { OverlaybdError } from '../errors.js';
import { nativeImageOf, type Image } from '../image.js';
import { native } from '../native.js';
import type { AttachedDevice } from './attach.js';
import { assertNotClaimed } from './claim.js';
import {
  CORE,
  DEFAULT_HBA,
  assertTcmuKernel,
  createBackstore,
  createLun,
  diskOf,
  findDisk,
  lunsOf,
  removeBackstore,
  removeLuns,
  tcmuNames,
} from './configfs.js';

const UIO_CLASS = '/sys/class/uio';

interface NativeTcmuDevice {
  readonly uioName: string;
  readonly running: boolean;
  readonly ringReset: boolean;
  readonly error: Error | null;
  close(): Promise<void>;
}

/** What tcmuParseUioName returns. */
interface UioName {
  hba: string;
  device: string;
  cfgstring: string;
  configPath: string;
  devId: string;
}

/** Opens the image a config.v1.json names (through the caller's image service). */
export type OpenConfig = (configPath: string) => Promise<Image>;

interface Served {
  uio: string;
  name: UioName;
  dev: NativeTcmuDevice;
  image: Image;
}

// Per process: the kernel lets one opener serve a UIO device, so every
// path (attach, discovery) goes through this one map, keyed by uioN.
const served = new Map<string, Promise<Served>>();
// Backstores being set up or torn down here (core dir): discovery leaves them alone.
const busy = new Set<string>();
// UIO devices discovery failed to serve, by uioN -> its name then; retried when the name changes.
const refused = new Map<string, string>();

function uioName(uio: string): string | undefined {
  try {
    return fs.readFileSync(`${UIO_CLASS}/${uio}/name`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The overlaybd devices among the UIO devices (others' are skipped). */
function overlaybdUios(): { uio: string; raw: string; name: UioName }[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(UIO_CLASS);
  } catch {
    return [];
  }
  const out: { uio: string; raw: string; name: UioName }[] = [];
  for (const uio of entries) {
    const raw = uioName(uio);
    if (!raw?.startsWith('tcm-user/')) continue;
    try {
      out.push({ uio, raw, name: native().tcmuParseUioName(raw) as UioName });
    } catch {
      // another handler's device (or a malformed cfgstring): not ours to serve
    }
  }
  return out;
}

function coreOf(n: UioName): string {
  return `${CORE}/user_${n.hba}/${n.device}`;
}

/** Serves `uio` (once per process); the image comes from `open`. */
function serve(uio: string, name: UioName, open: OpenConfig): Promise<Served> {
  let p = served.get(uio);
  if (p) return p;
  p = (async () => {
    const image = await open(name.configPath);
    try {
      const dev = (await native().tcmuServe(nativeImageOf(image), uio, { serial: name.device })) as NativeTcmuDevice;
      return { uio, name, dev, image };
    } catch (e) {
      await image.close().catch(() => {});
      throw e;
    }
  })();
  served.set(uio, p);
  p.catch(() => served.delete(uio));
  return p;
}

async function stop(s: Served): Promise<void> {
  served.delete(s.uio);
  await s.dev.close();
  await s.image.close();
}

export interface TcmuDevice extends AttachedDevice {
  /** The config.v1.json its cfgstring names. */
  readonly config: string;
  /** Serving began with a ring reset: an earlier handler left commands on it. */
  readonly ringReset: boolean;
  /** Stops serving and leaves the kernel device for a later handler to take over (as upstream's overlaybd-tcmu on exit). */
  release(): Promise<void>;
}

/** The attached-device object of a served backstore; detach undoes upstream's steps and stops serving. */
function attached(s: Served, known: { path: string }): TcmuDevice {
  const core = coreOf(s.name);
  let detaching: Promise<void> | undefined;
  const dev: TcmuDevice = {
    id: `tcmu-${s.name.hba}-${s.name.device}`,
    file: `/dev/${s.uio}`,
    config: s.name.configPath,
    ringReset: s.dev.ringReset,
    image: s.image,
    ...(s.name.devId ? { upstreamId: s.name.devId } : {}),
    // A discovered device may get its LUN after discovery: looked up until found.
    get path() {
      if (!known.path) {
        const l = lunsOf(core)[0];
        const dev = l ? diskOf(l.naa) : '';
        if (dev) known.path = `/dev/${dev}`;
      }
      return known.path;
    },
    async detach() {
      if (!detaching && dev.path) assertNotClaimed(dev.path);
      // The LUN goes first (the disk syncs its cache through the ring on
      // its way out), then the handler, then the backstore.
      detaching ??= (async () => {
        busy.add(core);
        try {
          removeLuns(core);
          await stop(s);
          removeBackstore(core);
        } finally {
          busy.delete(core);
        }
      })();
      return detaching;
    },
    async release() {
      detaching ??= stop(s);
      return detaching;
    },
  };
  return dev;
}

/**
 * Upstream's AttachDevice (§1.6) with this process as the handler: the
 * backstore, its ring served, the tcm_loop LUN, /dev/sdX. `dev_<ID>` is a
 * free random 10-digit id (upstream's snapshot ids are small). Undoes what
 * it did when a step fails.
 */
export async function attachTcmu(configPath: string, open: OpenConfig, hba = DEFAULT_HBA): Promise<TcmuDevice> {
  assertTcmuKernel();
  let n = tcmuNames(hba, String(randomInt(1_000_000_000, 2_147_483_647)));
  for (let tries = 0; ; tries++) {
    try {
      busy.add(n.core);
      await createBackstore(n, configPath);
      break;
    } catch (e) {
      busy.delete(n.core);
      if ((e as OverlaybdError).code !== 'EEXIST' || tries >= 10) throw e;
      n = tcmuNames(hba, String(randomInt(1_000_000_000, 2_147_483_647)));
    }
  }
  let s: Served | undefined;
  try {
    const prefix = `tcm-user/${hba}/dev_${n.devId}/`;
    const found = overlaybdUios().find((u) => u.raw.startsWith(prefix));
    if (!found) throw new OverlaybdError('EIO', `no UIO device named ${prefix}… after enabling ${n.core}`);
    s = await serve(found.uio, found.name, open);
    createLun(n);
    const dev = await findDisk(n.naa);
    if (!dev) throw new OverlaybdError('ETIMEDOUT', `no SCSI disk appeared for ${n.naa} (see dmesg)`);
    return attached(s, { path: dev });
  } catch (e) {
    removeLuns(n.core);
    if (s) await stop(s).catch(() => {});
    removeBackstore(n.core);
    throw e;
  } finally {
    busy.delete(n.core);
  }
}

/**
 * Serves every overlaybd UIO device this process does not serve yet (the
 * takeover after a restart, and devices upstream's snapshotter made) and
 * returns them; one that cannot be served is reported through `onError`
 * once (until its name changes).
 */
export async function discoverTcmu(open: OpenConfig, onError: (uio: string, name: string, e: unknown) => void): Promise<TcmuDevice[]> {
  const out: TcmuDevice[] = [];
  for (const u of overlaybdUios()) {
    if (served.has(u.uio) || busy.has(coreOf(u.name)) || refused.get(u.uio) === u.raw) continue;
    try {
      const s = await serve(u.uio, u.name, open);
      refused.delete(u.uio);
      out.push(attached(s, { path: '' }));
    } catch (e) {
      refused.set(u.uio, u.raw);
      onError(u.uio, u.raw, e);
    }
  }
  return out;
}

/**
 * Stops serving devices the kernel removed (somebody removed the
 * backstore); returns their ids.
 */
export async function pruneTcmu(): Promise<string[]> {
  const gone: string[] = [];
  for (const [uio, p] of [...served]) {
    const s = await p.catch(() => undefined);
    if (!s || (s.dev.running && uioName(uio) === s.dev.uioName)) continue;
    await stop(s).catch(() => {});
    gone.push(`tcmu-${s.name.hba}-${s.name.device}`);
  }
  return gone;
}
