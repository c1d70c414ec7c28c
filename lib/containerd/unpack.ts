/**
 * Unpacks an image's layers into a snapshotter through containerd, as the Go
 * client's unpacker does: per layer, Stat(chainID) (done already?), Prepare
 * an extraction key with the layer's inherited labels (a remote snapshotter
 * answers AlreadyExists: it took the layer without its blob), else fetch the
 * blob, diff.Apply it onto the mounts, and Commit under the chainID.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { OverlaybdError } from '../errors.js';
import { isGrpcStatus, type ContainerdConnection } from './connection.js';
import { chainIds, inheritedLabels, Labels } from './labels.js';
import { applyLayer, Snapshots, type LayerDescriptor } from './snapshots.js';

export interface UnpackOptions {
  snapshotter: string;
  layers: LayerDescriptor[];
  diffIds: string[];
  /** Labels every layer's snapshot gets besides the inherited ones (rpull's image-ref, download-remote-blob). */
  extraLabels?: Record<string, string>;
  /** chainIDs the caller has just found missing (Stat NotFound): not asked again. */
  knownAbsent?: ReadonlySet<string>;
  /** Puts the layer blob into the content store (when the snapshotter did not take the layer remotely). */
  fetchLayer(layer: LayerDescriptor, index: number): Promise<void>;
  progress?: (line: string) => void;
}

export type LayerOutcome = 'existed' | 'remote' | 'applied';

export interface UnpackResult {
  /** chainID of the top layer (what `containerd.io/gc.ref.snapshot.<name>` names). */
  top: string;
  chainIds: string[];
  outcomes: LayerOutcome[];
}

/** snapshots.UnpackKeyFormat: `extract-<nanoseconds>-<random> <chainID>`. */
export function extractionKey(chainId: string): string {
  const nanos = process.hrtime.bigint() % 1_000_000_000n;
  return `extract-${nanos}-${randomBytes(3).toString('base64url')} ${chainId}`;
}

export async function unpackLayers(conn: ContainerdConnection, o: UnpackOptions): Promise<UnpackResult> {
  const sn = new Snapshots(conn, o.snapshotter);
  const chain = chainIds(o.diffIds);
  const outcomes: LayerOutcome[] = [];
  const say = o.progress ?? (() => {});
  for (const [i, layer] of o.layers.entries()) {
    const chainId = chain[i]!;
    const parent = i > 0 ? chain[i - 1]! : '';
    const tag = `layer ${i + 1}/${o.layers.length} ${layer.digest}`;
    if (!o.knownAbsent?.has(chainId) && (await sn.stat(chainId))) {
      say(`${tag}: already unpacked as ${chainId}`);
      outcomes.push('existed');
      continue;
    }
    const labels = { ...inheritedLabels(layer.annotations), ...(o.extraLabels ?? {}), [Labels.snapshotRef]: chainId };
    let key = '';
    let mounts: Awaited<ReturnType<Snapshots['prepare']>> | undefined;
    let remote = false;
    for (let attempt = 1; attempt <= 3 && !mounts && !remote; attempt++) {
      key = extractionKey(chainId);
      try {
        mounts = await sn.prepare(key, parent, labels);
      } catch (e) {
        if (!isGrpcStatus(e, grpc.status.ALREADY_EXISTS)) throw e;
        // The snapshotter committed the layer itself (or a concurrent unpack did).
        remote = (await sn.stat(chainId)) !== undefined;
      }
    }
    if (remote) {
      say(`${tag}: taken by snapshotter ${o.snapshotter} without its blob (${chainId})`);
      outcomes.push('remote');
      continue;
    }
    if (!mounts) throw new OverlaybdError('CONTAINERD_ERROR', `containerd snapshots.Prepare ${chainId}: AlreadyExists three times, but no snapshot ${chainId}`);
    try {
      await o.fetchLayer(layer, i);
      const diffId = await applyLayer(conn, layer, mounts);
      if (diffId !== o.diffIds[i]) {
        throw new OverlaybdError('DIGEST_MISMATCH', `containerd diff.Apply ${layer.digest}: unpacked content has diffID ${diffId}, config says ${o.diffIds[i]}`);
      }
      try {
        await sn.commit(chainId, key, labels);
      } catch (e) {
        // Another unpack committed the same chain meanwhile: ours is not needed.
        if (!isGrpcStatus(e, grpc.status.ALREADY_EXISTS)) throw e;
        await sn.remove(key).catch(() => {});
      }
    } catch (e) {
      await sn.remove(key).catch(() => {});
      throw e;
    }
    say(`${tag}: applied and committed as ${chainId}`);
    outcomes.push('applied');
  }
  return { top: chain[chain.length - 1] ?? '', chainIds: chain, outcomes };
}
