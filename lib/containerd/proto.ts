// containerd's v1 gRPC API, loaded from the protos vendored under proto/
// (containerd 1.6.20, see proto/README.md). One loader for the snapshotter
// server and for the clients of containerd's own services.
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../native.js';

const API_DIR = 'github.com/containerd/containerd/api';

/** The services this package serves or calls, by short name. */
export const SERVICES = {
  snapshots: 'containerd.services.snapshots.v1.Snapshots',
  content: 'containerd.services.content.v1.Content',
  images: 'containerd.services.images.v1.Images',
  leases: 'containerd.services.leases.v1.Leases',
  diff: 'containerd.services.diff.v1.Diff',
  namespaces: 'containerd.services.namespaces.v1.Namespaces',
  containers: 'containerd.services.containers.v1.Containers',
  tasks: 'containerd.services.tasks.v1.Tasks',
  version: 'containerd.services.version.v1.Version',
} as const;
export type ServiceName = keyof typeof SERVICES;

/** Options shared by every use: field names in lowerCamelCase as grpc-js gives
 * them, 64-bit integers as strings (sizes can pass 2^53), enums by name. */
const LOAD_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export function protoDir(): string {
  return path.join(packageRoot(), 'proto');
}

function listProtos(dir: string, rel = API_DIR): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...listProtos(dir, r));
    else if (e.name.endsWith('.proto')) out.push(r);
  }
  return out.sort();
}

let cached: grpc.GrpcObject | undefined;

/** The whole vendored API as a grpc-js object tree (loaded once). */
export function containerdApi(): grpc.GrpcObject {
  if (!cached) {
    const dir = protoDir();
    const def = protoLoader.loadSync(listProtos(dir), { ...LOAD_OPTIONS, includeDirs: [dir] });
    cached = grpc.loadPackageDefinition(def);
  }
  return cached;
}

/** The client constructor of one service (also carries `.service` for servers). */
export function serviceClient(name: ServiceName): grpc.ServiceClientConstructor {
  let node: unknown = containerdApi();
  for (const part of SERVICES[name].split('.')) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`containerd API has no service ${SERVICES[name]}`);
  return node as grpc.ServiceClientConstructor;
}

/** The service definition to register on a grpc-js server. */
export function serviceDefinition(name: ServiceName): grpc.ServiceDefinition {
  return serviceClient(name).service;
}
