// containerd's v1 gRPC API, from the protos vendored under proto/
// (containerd 1.6.20, see proto/README.md). One loader for the snapshotter
// server and for the clients of containerd's own services.
//
// The services' definitions are read from proto/containerd-api.json, which
// `scripts/vendor-protos.sh` makes from the .proto files with protobufjs
// (a test checks the two agree): parsing the .proto text took 15-25 ms of
// `overlaybd rpull`'s critical path, the JSON 2-6 ms. @grpc/proto-loader
// is not used: it builds and encodes descriptors of every file for
// reflection, which nothing here uses.
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { packageRoot } from '../native.js';

const API_DIR = 'github.com/containerd/containerd/api';

/** The services this package serves or calls, by short name, with the file that defines each. */
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

/** services/<dir>/v1/<file>.proto of each service (namespaces is namespace.proto upstream). */
const PROTO_FILE: Record<ServiceName, string> = {
  snapshots: 'snapshots/v1/snapshots.proto',
  content: 'content/v1/content.proto',
  images: 'images/v1/images.proto',
  leases: 'leases/v1/leases.proto',
  diff: 'diff/v1/diff.proto',
  namespaces: 'namespaces/v1/namespace.proto',
  containers: 'containers/v1/containers.proto',
  tasks: 'tasks/v1/tasks.proto',
  version: 'version/v1/version.proto',
};

/** The generated definitions of every service above, under proto/. */
export const API_JSON = 'containerd-api.json';

/** How messages look in JS, as proto-loader's options gave them before: fields in
 * lowerCamelCase, 64-bit integers as strings (sizes can pass 2^53), enums by name,
 * defaults filled in, the set member of a oneof named. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true };

export function protoDir(): string {
  return path.join(packageRoot(), 'proto');
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/**
 * Parses every service's .proto file and its imports into one root
 * (google/protobuf/* are protobufjs's bundled copies): what API_JSON holds.
 */
export function parseProtoApi(dir = protoDir()): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(dir, target));
  root.loadSync(
    Object.values(PROTO_FILE).map((f) => `${API_DIR}/services/${f}`),
    { keepCase: false },
  );
  root.resolveAll();
  return root;
}

let api: protobuf.Root | undefined;

function loadService(name: ServiceName): protobuf.Service {
  api ??= protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(path.join(protoDir(), API_JSON), 'utf8')) as protobuf.INamespace);
  const svc = api.lookupService(SERVICES[name]);
  svc.resolveAll();
  return svc;
}

function serializer(type: protobuf.Type): grpc.serialize<unknown> {
  return (value) => {
    if (Array.isArray(value)) throw new TypeError(`cannot serialize an array as ${type.fullName}`);
    return Buffer.from(type.encode(type.fromObject(value as Record<string, unknown>)).finish());
  };
}

function deserializer(type: protobuf.Type): grpc.deserialize<unknown> {
  return (bytes) => type.toObject(type.decode(bytes), TO_OBJECT);
}

/** The grpc-js definition of a service: one entry per method, `prepare` as an alias of `Prepare`. */
function definitionOf(svc: protobuf.Service, fullName: string): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of svc.methodsArray) {
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    def[m.name] = {
      path: `/${fullName}/${m.name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: serializer(req),
      requestDeserialize: deserializer(req),
      responseSerialize: serializer(res),
      responseDeserialize: deserializer(res),
      originalName: lowerFirst(m.name),
    };
  }
  return def as grpc.ServiceDefinition;
}

const clients = new Map<ServiceName, grpc.ServiceClientConstructor>();

/** The client constructor of one service (also carries `.service` for servers); loaded once. */
export function serviceClient(name: ServiceName): grpc.ServiceClientConstructor {
  let ctor = clients.get(name);
  if (!ctor) {
    const fullName = SERVICES[name];
    ctor = grpc.makeClientConstructor(definitionOf(loadService(name), fullName), fullName);
    clients.set(name, ctor);
  }
  return ctor;
}

/** The service definition to register on a grpc-js server. */
export function serviceDefinition(name: ServiceName): grpc.ServiceDefinition {
  return serviceClient(name).service;
}
