/**
 * The snapshots and diff services as the unpacker uses them; every request
 * names the snapshotter (`snapshotter not loaded` is InvalidArgument).
 */
import * as grpc from '@grpc/grpc-js';
import { isGrpcStatus, type ContainerdConnection } from './connection.js';

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
}

export interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export class Snapshots {
  constructor(
    private readonly conn: ContainerdConnection,
    readonly snapshotter: string,
  ) {}

  /** The snapshot's info, or undefined when it does not exist. */
  async stat(key: string): Promise<SnapshotInfo | undefined> {
    try {
      const r = await this.conn.call<{ info?: SnapshotInfo }>('snapshots', 'Stat', { snapshotter: this.snapshotter, key }, key);
      return r.info;
    } catch (e) {
      if (isGrpcStatus(e, grpc.status.NOT_FOUND)) return undefined;
      throw e;
    }
  }

  async prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const r = await this.conn.call<{ mounts?: Mount[] }>('snapshots', 'Prepare', { snapshotter: this.snapshotter, key, parent, labels }, key);
    return r.mounts ?? [];
  }

  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    await this.conn.call('snapshots', 'Commit', { snapshotter: this.snapshotter, name, key, labels }, key);
  }

  async remove(key: string): Promise<void> {
    await this.conn.call('snapshots', 'Remove', { snapshotter: this.snapshotter, key }, key);
  }
}

/** diff.Apply: unpacks the layer blob (from the content store) onto the mounts; returns the diffID it computed. */
export async function applyLayer(conn: ContainerdConnection, layer: LayerDescriptor, mounts: Mount[]): Promise<string> {
  const diff = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: layer.annotations ?? {} };
  const r = await conn.call<{ applied?: { digest: string } }>('diff', 'Apply', { diff, mounts }, layer.digest);
  return r.applied?.digest ?? '';
}
