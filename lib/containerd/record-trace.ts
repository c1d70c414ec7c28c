/**
 * `record-trace` (accelerated-container-image.md §3.2): runs a command in a
 * container of an overlaybd image already unpacked in the snapshotter
 * (`overlaybd rpull`), with the rootfs labels that make the image service
 * record the blocks read (record-trace=yes, record-trace-path=<empty file>),
 * stops it when it ends or after `time`, collects the trace (delete
 * `<trace>.lock`, wait for `<trace>.ok`), and writes NEW_IMAGE = the old
 * layers + an acceleration layer holding the trace into containerd's
 * content store, then (optionally) pushes it. Everything it creates besides
 * the new image (container, task, snapshot, lease, trace file) is removed,
 * on success and on failure.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { z } from 'zod';
import { parseWith } from '../config.js';
import { ImageConfigSchema, parseDocument, type Descriptor } from '../convertor/spec.js';
import { ANNOTATION_BLOB_DIGEST } from '../convertor/media.js';
import { OverlaybdError } from '../errors.js';
import { sha256Digest, type RegistryClient } from '../registry/index.js';
import { ContainerdConnection, type ConnectionOptions } from './connection.js';
import { updateContentLabels, writeContent } from './content-store.js';
import { getImage, putImage } from './image-store.js';
import { pushImage } from './image-push.js';
import { chainIds, childGcLabels } from './labels.js';
import { dropLease, takeLease } from './leases.js';
import { readBlob, sourceManifest } from './obdconv.js';
import { cniPluginDir, setupTraceNetwork, type TraceNetwork } from './cni-network.js';
import { resolveImageUser } from './image-user.js';
import { processArgs, runtimeSpec } from './oci-spec.js';
import { withTempMount } from './temp-mount.js';
import { hostPlatform, type Platform } from './platform.js';
import { DEFAULT_SNAPSHOTTER } from './pull.js';
import { Snapshots } from './snapshots.js';
import { createContainer, DEFAULT_RUNTIME, deleteContainer, removeTask, runTask } from './tasks.js';
import { compactTrace, DEFAULT_TRACE_GAP } from './trace-compact.js';
import { ANNOTATION_ACCELERATION_LAYER, ANNOTATION_FS_TYPE, traceLayerDescriptor, traceLayerTar, tracedConfig, tracedManifest } from './trace-layer.js';

export const LABEL_RECORD_TRACE = 'containerd.io/snapshot/overlaybd/record-trace';
export const LABEL_RECORD_TRACE_PATH = 'containerd.io/snapshot/overlaybd/record-trace-path';
export const DEFAULT_WORKING_DIR = '/tmp/ctr-record-trace/';

export const RecordTraceOptionsSchema = z
  .object({
    oldImage: z.string().min(1, 'the old image name is empty'),
    newImage: z.string().min(1, 'the new image name is empty'),
    /** The command; the image's entrypoint and cmd when empty. */
    args: z.array(z.string()).default([]),
    /** Seconds before SIGTERM (and as long again before SIGKILL, and for the trace to appear). */
    timeSec: z.number().int().positive('time must be at least 1 second').default(60),
    /** A file of absolute paths to prefetch instead of a recorded trace (no container runs). */
    priorityList: z.string().min(1).optional(),
    workingDir: z.string().min(1).default(DEFAULT_WORKING_DIR),
    snapshotter: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'want letters, digits, . _ -').default(DEFAULT_SNAPSHOTTER),
    runtime: z.string().min(1).default(DEFAULT_RUNTIME),
    /** Run on the host's network; else in a network namespace on the CNI bridge r-trace-br0 (cni-network.ts). */
    hostNetwork: z.boolean().default(false),
    /** Where the CNI plugins are (default: upstream's /opt/cni/bin/, else Debian's /usr/lib/cni). */
    cniPluginDir: z.string().min(1).optional(),
  })
  .refine((o) => !(o.priorityList !== undefined && o.args.length > 0), { message: '--priority_list and a command exclude each other', path: ['priorityList'] });

export interface RecordTraceOptions extends ConnectionOptions, z.input<typeof RecordTraceOptionsSchema> {
  platform?: Platform;
  /** Push NEW_IMAGE to its registry with this client when given. */
  push?: RegistryClient;
  /** Aborting it ends the recording early (SIGTERM to the task); the image is still built. */
  stop?: AbortSignal;
  /** Where the container's output goes (default: this process's). */
  stdout?: Writable;
  stderr?: Writable;
  progress?: (line: string) => void;
}

export interface RecordTraceResult {
  name: string;
  target: { mediaType: string; digest: string; size: number };
  layer: Descriptor;
  /** Bytes of the trace (or priority list) in the layer. */
  traceBytes: number;
  exitStatus?: number;
  timedOut?: boolean;
  pushed: boolean;
}

/** upstream's uniqueObjectString: `record-trace-<YYYYmmddHHMMSS>-<4 hex>`. */
function uniqueName(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return `record-trace-${stamp}-${randomBytes(2).toString('hex')}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ends the recording (deletes `<trace>.lock`) and waits for `<trace>.ok`: `timeSec` as upstream, at least 10 s (the recorder polls the lock each second). */
async function collectTrace(traceFile: string, timeSec: number, signal: AbortSignal | undefined, say: (l: string) => void): Promise<void> {
  fs.rmSync(`${traceFile}.lock`, { force: true });
  say('collecting the trace ...');
  const waitSec = Math.max(timeSec, 10);
  for (let i = 0; i < waitSec; i++) {
    signal?.throwIfAborted();
    await sleep(1000);
    if (fs.existsSync(`${traceFile}.ok`)) return;
  }
  throw new OverlaybdError(
    'ETIMEDOUT',
    `the trace ${traceFile} was not written within ${waitSec} s: the image's device did not record (was it attached already, by another container of this image? stop those and retry)`,
  );
}

/** overlaybd reads a priority list of at most 64 KiB of text (format spec §6.4). */
async function checkPriorityList(file: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch (e) {
    throw new OverlaybdError('ENOENT', `--priority_list ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!st.isFile()) throw new OverlaybdError('EINVAL', `--priority_list ${file}: not a regular file`);
  if (st.size > 64 << 10) throw new OverlaybdError('EINVAL', `--priority_list ${file}: ${st.size} bytes, more than the 64 KiB overlaybd reads`);
}

/**
 * Removes the trace file and its markers. A recording still going (a failed
 * run) is ended first and its .ok awaited: the recorder would write them
 * again after we removed them.
 */
async function removeTraceFiles(traceFile: string, timeSec: number): Promise<void> {
  const [lock, ok] = [`${traceFile}.lock`, `${traceFile}.ok`];
  if (fs.existsSync(lock) && !fs.existsSync(ok)) {
    fs.rmSync(lock, { force: true });
    for (let i = 0; i < Math.min(timeSec, 10) * 10 && !fs.existsSync(ok); i++) await sleep(100);
  }
  for (const f of [traceFile, ok, lock]) fs.rmSync(f, { force: true });
}

export async function recordTrace(o: RecordTraceOptions): Promise<RecordTraceResult> {
  const opts = parseWith(RecordTraceOptionsSchema, o, 'record-trace options');
  const say = o.progress ?? (() => {});
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  // Wait stays open while the task runs: longer than the task's two periods.
  if (opts.priorityList) await checkPriorityList(opts.priorityList);
  const conn = new ContainerdConnection({ ...o, callTimeoutMs: Math.max(o.callTimeoutMs ?? 600_000, (3 * opts.timeSec + 60) * 1000) });
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    if (await getImage(conn, opts.newImage)) throw new OverlaybdError('EEXIST', `image ${opts.newImage} exists already in containerd (namespace ${conn.namespace})`);
    const img = await getImage(conn, opts.oldImage);
    if (!img) throw new OverlaybdError('ENOENT', `image ${opts.oldImage} not found in containerd (namespace ${conn.namespace}): pull it first with overlaybd rpull`);
    const { desc: mdesc, manifest } = await sourceManifest(conn, opts.oldImage, img.target, o.platform ?? hostPlatform());
    const layers = manifest.layers ?? [];
    const top = layers.at(-1);
    if (!top?.annotations?.[ANNOTATION_BLOB_DIGEST]) {
      throw new OverlaybdError('FAILED_PRECONDITION', `${opts.oldImage}: not an overlaybd image (its top layer has no ${ANNOTATION_BLOB_DIGEST} annotation)`);
    }
    if (top.annotations[ANNOTATION_ACCELERATION_LAYER] === 'yes') {
      throw new OverlaybdError('FAILED_PRECONDITION', `${opts.oldImage}: has an acceleration layer already (record from the image below it)`);
    }
    const config = parseDocument(ImageConfigSchema, await readBlob(conn, opts.oldImage, manifest.config, 'config'), `config ${manifest.config.digest} of ${opts.oldImage}`);
    const diffIds = config.rootfs.diff_ids ?? [];
    if (diffIds.length !== layers.length) {
      throw new OverlaybdError('CONFIG_INVALID', `${opts.oldImage}: manifest ${mdesc.digest} has ${layers.length} layers but its config has ${diffIds.length} diff_ids`);
    }
    const parent = chainIds(diffIds).at(-1)!;
    const sn = new Snapshots(conn, opts.snapshotter);
    if (!opts.priorityList && !(await sn.stat(parent))) {
      throw new OverlaybdError('ENOENT', `${opts.oldImage} is not unpacked in snapshotter ${opts.snapshotter} (no snapshot ${parent}): pull it with overlaybd rpull --snapshotter ${opts.snapshotter}`);
    }

    await fs.promises.mkdir(opts.workingDir, { recursive: true });
    const name = uniqueName();
    const traceFile = path.resolve(opts.workingDir, name);
    await fs.promises.writeFile(traceFile, '', { flag: 'wx' });
    cleanups.push(() => removeTraceFiles(traceFile, opts.timeSec));
    // The lease must outlive the run and what follows it (collecting the
    // trace, building and pushing the image): the Go client's 24 h, not a
    // multiple of --time, which a busy machine outran (the content it
    // guarded was collected under the push). It is dropped at the end.
    const lease = await takeLease(conn);
    cleanups.push(() => dropLease(conn, lease).catch((e: unknown) => say(`warning: ${(e as Error).message}`)));

    let run: { exitStatus: number; timedOut: boolean } | undefined;
    if (opts.priorityList) {
      await fs.promises.copyFile(opts.priorityList, traceFile);
    } else {
      run = await recordIn(conn, sn, { ...opts, name, parent, traceFile, config, stdout, stderr, say, ...(o.stop ? { stop: o.stop } : {}), ...(o.signal ? { signal: o.signal } : {}) });
    }

    // The acceleration layer, config and manifest into the content store, then the image record.
    let trace: Buffer = await fs.promises.readFile(traceFile);
    if (!opts.priorityList) {
      const c = compactTrace(trace, DEFAULT_TRACE_GAP, traceFile);
      say(`trace: ${c.before} records, ${c.after} after merging neighbouring reads`);
      trace = c.trace;
    }
    const tar = traceLayerTar(trace);
    const fsType = top.annotations[ANNOTATION_FS_TYPE];
    const layer = traceLayerDescriptor(tar, fsType);
    await writeContent(conn, `layer-${layer.digest}`, layer, tar);
    const configBytes = tracedConfig(config, layer.digest, new Date(), `config ${manifest.config.digest}`);
    const configDesc = { mediaType: manifest.config.mediaType ?? 'application/vnd.oci.image.config.v1+json', digest: sha256Digest(configBytes), size: configBytes.length };
    await writeContent(conn, `config-${configDesc.digest}`, configDesc, configBytes);
    const mediaType = mdesc.mediaType ?? manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
    const manifestBytes = tracedManifest(manifest, mediaType, configDesc, layer);
    const target = { mediaType, digest: sha256Digest(manifestBytes), size: manifestBytes.length };
    await writeContent(conn, `manifest-${target.digest}`, target, manifestBytes);
    const newLayers = [...layers, layer];
    await updateContentLabels(conn, target.digest, childGcLabels([configDesc, ...newLayers.map((d) => ({ mediaType: d.mediaType ?? '', digest: d.digest }))]));
    await putImage(conn, { name: opts.newImage, target });
    say(`New image ${opts.newImage} is created (${target.digest}, trace ${trace.length} bytes)`);

    let pushed = false;
    if (o.push) {
      await pushImage(conn, { registry: o.push, ref: opts.newImage, manifest: target, config: configDesc, layers: newLayers, mountFrom: opts.oldImage, say, ...(o.signal ? { signal: o.signal } : {}) });
      pushed = true;
    }
    return { name: opts.newImage, target, layer, traceBytes: trace.length, ...(run ?? {}), pushed };
  } finally {
    for (const c of cleanups.reverse()) await c();
    conn.close();
  }
}

interface RecordInOptions {
  name: string;
  parent: string;
  traceFile: string;
  config: z.infer<typeof ImageConfigSchema>;
  args: string[];
  timeSec: number;
  snapshotter: string;
  runtime: string;
  hostNetwork: boolean;
  cniPluginDir?: string | undefined;
  oldImage: string;
  stdout: Writable;
  stderr: Writable;
  stop?: AbortSignal;
  signal?: AbortSignal;
  say: (line: string) => void;
}

/** The recording itself: snapshot with the trace labels, container, task; then the trace collected and all of it removed. */
async function recordIn(conn: ContainerdConnection, sn: Snapshots, o: RecordInOptions): Promise<{ exitStatus: number; timedOut: boolean }> {
  const id = o.name;
  processArgs(o.config.config, o.args); // a missing command fails before anything is made
  let snapshot = false;
  let container = false;
  let net: TraceNetwork | undefined;
  try {
    if (!o.hostNetwork) net = await setupTraceNetwork(id, cniPluginDir(o.cniPluginDir));
    const mounts = await sn.prepare(id, o.parent, { [LABEL_RECORD_TRACE]: 'yes', [LABEL_RECORD_TRACE_PATH]: o.traceFile });
    snapshot = true;
    const user = await withTempMount(mounts, (root) => resolveImageUser(o.config.config?.User ?? '', root));
    const network = net ? { netns: net.netns } : ('host' as const);
    const spec = runtimeSpec({ id, namespace: conn.namespace, config: o.config.config, args: o.args, network, user });
    await createContainer(conn, { id, image: o.oldImage, snapshotter: o.snapshotter, snapshotKey: id, runtime: o.runtime, spec });
    container = true;
    const r = await runTask(conn, {
      id,
      mounts,
      stdout: o.stdout,
      stderr: o.stderr,
      timeoutMs: o.timeSec * 1000,
      say: o.say,
      ...(o.stop ? { stop: o.stop } : {}),
    });
    o.say(r.timedOut ? `task ended by the time limit (exit status ${r.exitStatus})` : `task exited with status ${r.exitStatus}`);
    if (r.exitStatus !== 0 && !r.timedOut && !o.stop?.aborted) {
      throw new OverlaybdError('EINVAL', `the command ${JSON.stringify(o.args.length ? o.args : 'of the image')} exited with status ${r.exitStatus}: no image is made from a failed run`);
    }
    await collectTrace(o.traceFile, o.timeSec, o.signal, o.say);
    return r;
  } finally {
    if (container) {
      await removeTask(conn, id).catch(() => {});
      await deleteContainer(conn, id).catch((e: unknown) => o.say(`warning: ${(e as Error).message}`));
    }
    if (snapshot) await sn.remove(id).catch((e: unknown) => o.say(`warning: ${(e as Error).message}`));
    await net?.release().catch((e: unknown) => o.say(`warning: ${(e as Error).message}`));
  }
}
