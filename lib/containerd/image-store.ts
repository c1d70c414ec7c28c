/** containerd's image records: create one, or replace it when the name is taken (the Go client's createNewImage). */
import * as grpc from '@grpc/grpc-js';
import { isGrpcStatus, type ContainerdConnection } from './connection.js';

export interface ImageRecord {
  name: string;
  target: { mediaType: string; digest: string; size: number };
  labels?: Record<string, string>;
}

export async function putImage(conn: ContainerdConnection, image: ImageRecord): Promise<'created' | 'updated'> {
  const img = { name: image.name, labels: image.labels ?? {}, target: image.target };
  try {
    await conn.call('images', 'Create', { image: img }, image.name);
    return 'created';
  } catch (e) {
    if (!isGrpcStatus(e, grpc.status.ALREADY_EXISTS)) throw e;
  }
  // No field mask: the record is replaced (target and labels), as containerd's client does.
  await conn.call('images', 'Update', { image: img }, image.name);
  return 'updated';
}
