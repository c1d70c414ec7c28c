/**
 * Leases keep what a pull writes (content, snapshots) from containerd's GC
 * until the image record and the GC labels reference it, as the Go client's
 * WithLease does: a random id and a `containerd.io/gc.expire` label.
 */
import { randomBytes } from 'node:crypto';
import type { ContainerdConnection } from './connection.js';
import { Labels, rfc3339 } from './labels.js';

/** leases.WithRandomID: `<nanoseconds>-<base64 of 3 random bytes>`. */
export function randomLeaseId(now = process.hrtime.bigint()): string {
  return `${now % 1_000_000_000n}-${randomBytes(3).toString('base64url')}`;
}

/** Creates a lease that expires after `ttlMs` (default 24 h) and sends it on the connection's next calls. */
export async function takeLease(conn: ContainerdConnection, ttlMs = 24 * 3600_000): Promise<string> {
  const id = randomLeaseId();
  const labels = { [Labels.gcExpire]: rfc3339(new Date(Date.now() + ttlMs)) };
  await conn.call('leases', 'Create', { id, labels }, id);
  conn.useLease(id);
  return id;
}

/** Deletes the lease and stops sending it; what nothing else references is then left to the GC. */
export async function dropLease(conn: ContainerdConnection, id: string): Promise<void> {
  conn.useLease(undefined);
  await conn.call('leases', 'Delete', { id }, id);
}
