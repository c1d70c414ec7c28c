/**
 * Turns a config.v1.json into what the native image service opens (§5.1):
 * lowers resolved to local files or registry blobs, the acceleration layer
 * taken off the stack and its trace used, recordTracePath's mode, the
 * per-image download settings over the global ones, and the resultFile.
 */
import fs from 'node:fs/promises';
import { resolveImageConfig, type LowerSource, type ResolvedImageConfig } from '../config.js';
import { OverlaybdError } from '../errors.js';
import { mergeDownload, toNativeDownload, type GlobalConfig, type NativeServiceSettings } from './global-config.js';
import { writeResultFile } from './result-file.js';

/** The request object bindings/service.cpp reads. */
export interface NativeImageRequest {
  lowers: LowerSource[];
  upper?: { data: string; index?: string };
  download: NativeServiceSettings['download'];
  tracePath?: string;
  autoPrefetch: boolean;
}

export interface ImageRequest {
  configPath: string;
  native: NativeImageRequest;
  /** Registry hosts of the remote lowers (credentials are handed down for each). */
  registryHosts: string[];
  remoteLayers: number;
  /** Writes the config's resultFile, if it names one. */
  reportResult(outcome: { ok: true } | { ok: false; reason: string }): Promise<void>;
}

async function fileSize(p: string): Promise<number | undefined> {
  try {
    return (await fs.stat(p)).size;
  } catch {
    return undefined;
  }
}

/** `resolved`: the config already read and resolved (by openImageConfig), not read again. */
export async function buildImageRequest(
  configPath: string,
  global: GlobalConfig,
  opts: { autoPrefetch?: boolean; reportResult?: boolean; recordTrace?: boolean } = {},
  resolved?: ResolvedImageConfig,
): Promise<ImageRequest> {
  const r = resolved ?? (await resolveImageConfig(configPath));
  const { config } = r;
  const lowers = [...r.lowers];
  const resultFile = config.resultFile && opts.reportResult !== false ? r.abs(config.resultFile) : undefined;
  const reportResult = async (outcome: { ok: true } | { ok: false; reason: string }) => {
    if (resultFile) await writeResultFile(resultFile, outcome);
  };

  let tracePath: string | undefined;
  const record = config.recordTracePath ? r.abs(config.recordTracePath) : undefined;
  const recordSize = record ? await fileSize(record) : undefined;
  if (config.accelerationLayer) {
    // The last lower is the acceleration layer (resolveImageConfig left it off the stack); its trace is replayed (§5.1).
    if (config.lowers.length === 0) throw new OverlaybdError('CONFIG_INVALID', `${configPath}: accelerationLayer: there are no lowers`);
    if (recordSize === 0) {
      throw new OverlaybdError('CONFIG_INVALID', `${configPath}: recordTracePath: cannot record a trace of an image with accelerationLayer`);
    }
    const dir = config.lowers[config.lowers.length - 1]?.dir;
    const trace = dir ? `${r.abs(dir)}/trace` : undefined;
    if (trace && ((await fileSize(trace)) ?? 0) > 0) tracePath = trace;
  }
  if (record && recordSize !== undefined && opts.recordTrace !== false) tracePath = record;

  const remote = lowers.filter((l): l is Extract<LowerSource, { url: string }> => 'url' in l);
  const hosts = [...new Set(remote.map((l) => new URL(l.url).host))];
  const native: NativeImageRequest = {
    lowers,
    ...(r.upper ? { upper: r.upper } : {}),
    download: toNativeDownload(mergeDownload(global.download, config.download, configPath)),
    ...(tracePath ? { tracePath } : {}),
    autoPrefetch: opts.autoPrefetch ?? true,
  };
  return { configPath, native, registryHosts: hosts, remoteLayers: remote.length, reportResult };
}
