/**
 * Writes proto/containerd-api.json: the vendored containerd services parsed
 * by protobufjs, which lib/containerd/proto.ts loads instead of the .proto
 * text. Run by vendor-protos.sh; test/proto-json.test.ts checks it is current.
 */
import fs from 'node:fs';
import path from 'node:path';
import { API_JSON, parseProtoApi, protoDir } from '../lib/containerd/proto.js';

export function protoApiJson(): string {
  return JSON.stringify(parseProtoApi().toJSON(), null, 1) + '\n';
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename ?? '')) {
  const out = path.join(protoDir(), API_JSON);
  fs.writeFileSync(out, protoApiJson());
  process.stdout.write(`wrote ${out}\n`);
}
