/**
 * proto/containerd-api.json, which the gRPC clients and the snapshotter load,
 * is what the vendored .proto files give (scripts/vendor-protos.sh writes it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { API_JSON, protoDir, serviceClient, SERVICES, type ServiceName } from '../lib/containerd/proto.js';
import { protoApiJson } from '../scripts/proto-json.js';

describe('containerd API definitions', () => {
  it('the JSON matches the vendored .proto files', () => {
    expect(fs.readFileSync(path.join(protoDir(), API_JSON), 'utf8')).toBe(protoApiJson());
  });

  it('every service loads from it with its methods', () => {
    for (const name of Object.keys(SERVICES) as ServiceName[]) {
      const def = serviceClient(name).service;
      expect(Object.keys(def).length, name).toBeGreaterThan(0);
    }
    expect(Object.keys(serviceClient('snapshots').service)).toEqual(
      expect.arrayContaining(['Prepare', 'View', 'Mounts', 'Commit', 'Remove', 'Stat', 'Update', 'List', 'Usage', 'Cleanup']),
    );
  });
});
