/**
 * The snapshotter's config.json (accelerated-container-image.md §1.1): JSON
 * over upstream's defaults (BootConfig / DefaultBootConfig), validated with
 * zod so a bad field is named. Two keys are ours: `deviceSocket` and
 * `deviceFrontend`, how to reach the device service that attaches images
 * (upstream writes configfs itself; docs/decisions.md says why we do not).
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { OverlaybdError } from '../errors.js';
import { parseRamBytes } from './ram-bytes.js';

export const DEFAULT_CONFIG_PATH = '/etc/overlaybd-snapshotter/config.json';

const str = z.string();

const MirrorSchema = z.object({ host: str, insecure: z.boolean().default(false) }).loose();

const ExporterSchema = z
  .object({
    enable: z.boolean().default(false),
    uriPrefix: str.startsWith('/').default('/metrics'),
    port: z.number().int().min(0).max(65535).default(9863),
  })
  .loose()
  .prefault({});

export const SnapshotterConfigSchema = z
  .object({
    root: str.min(1, 'must be set'),
    address: str.min(1, 'must be set'),
    verbose: z.enum(['trace', 'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'panic']).default('info'),
    logReportCaller: z.boolean().default(false),
    // Upstream treats any unknown value as overlayfs; so do we.
    rwMode: str.default('overlayfs'),
    autoRemoveDev: z.boolean().default(false),
    asyncRemove: z.boolean().default(false),
    writableLayerType: z.enum(['append', 'sparse']).default('append'),
    mirrorRegistry: z.array(MirrorSchema).nullable().default(null),
    defaultFsType: str.min(1).default('ext4'),
    rootfsQuota: str.default('').refine((v) => v === '' || (parseRamBytes(v) ?? 0) > 0, 'must be a size such as "20g" or "512MiB", or "" for none'),
    tenant: z.number().int().default(-1),
    turboFsType: z.array(str).default(['erofs', 'ext4']),
    runtimeType: z.enum(['containerd', 'docker']).default('containerd'),
    exporterConfig: ExporterSchema,
    /** Ours: the device service's control socket (its default controlSocket). */
    deviceSocket: str.min(1).default('/run/overlaybd/overlaybd.sock'),
    /** Ours: the frontend to ask for; fuse as `overlaybd attach` (tcmu needs target_core_user). */
    deviceFrontend: z.enum(['fuse', 'tcmu', 'ublk']).default('fuse'),
  })
  .loose();

export type SnapshotterConfig = z.output<typeof SnapshotterConfigSchema>;
export type RwMode = 'overlayfs' | 'dir' | 'dev';

/** Upstream: anything but dir/dev is overlayfs. */
export function rwModeOf(v: string | undefined): RwMode {
  return v === 'dir' || v === 'dev' ? v : 'overlayfs';
}

function issuesText(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** Validates parsed JSON; `where` names the source in messages. */
export function parseSnapshotterConfig(json: unknown, where = 'config'): SnapshotterConfig {
  const r = SnapshotterConfigSchema.safeParse(json);
  if (!r.success) throw new OverlaybdError('CONFIG_INVALID', `${where}: ${issuesText(r.error)}`);
  const cfg = r.data;
  // Upstream forces both ext4 and erofs into the list, appending missing ones.
  for (const fsType of ['ext4', 'erofs']) if (!cfg.turboFsType.includes(fsType)) cfg.turboFsType.push(fsType);
  cfg.root = path.resolve(cfg.root);
  cfg.address = path.resolve(cfg.address);
  return cfg;
}

/** Reads the config file; a missing or unparsable file is fatal, as upstream. */
export function loadSnapshotterConfig(file = DEFAULT_CONFIG_PATH): SnapshotterConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `${file}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new OverlaybdError('CONFIG_INVALID', `${file}: not JSON: ${(e as Error).message}`, { cause: e });
  }
  return parseSnapshotterConfig(json, file);
}
