/**
 * compactTrace: a trace built by hand from the format spec's byte layout
 * (§6.4) comes out with each layer's reads sorted and merged across small
 * gaps, write records kept, the header's size and checksum right; a text
 * priority list passes unchanged and a damaged trace is refused.
 */
import { describe, expect, it } from 'vitest';
import { compactTrace } from '../lib/containerd/trace-compact.js';

function crc32c(bytes: Uint8Array): number {
  let c = 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return c >>> 0;
}

type Rec = { op?: string; layer: number; offset: number; count: number };

function trace(records: Rec[]): Buffer {
  const body = Buffer.alloc(24 * records.length);
  records.forEach((r, i) => {
    body.write(r.op ?? 'R', i * 24, 'latin1');
    body.writeUInt32LE(r.layer, i * 24 + 4);
    body.writeBigUInt64LE(BigInt(r.count), i * 24 + 8);
    body.writeBigInt64LE(BigInt(r.offset), i * 24 + 16);
  });
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xc2ef1820, 0);
  head.writeBigUInt64LE(BigInt(body.length), 8);
  head.writeUInt32LE(crc32c(body), 16);
  return Buffer.concat([head, body]);
}

function records(buf: Buffer): Rec[] {
  expect(buf.readUInt32LE(0)).toBe(0xc2ef1820);
  const body = buf.subarray(24);
  expect(Number(buf.readBigUInt64LE(8))).toBe(body.length);
  expect(buf.readUInt32LE(16)).toBe(crc32c(body));
  const out: Rec[] = [];
  for (let at = 0; at < body.length; at += 24) {
    out.push({ op: String.fromCharCode(body[at]!), layer: body.readUInt32LE(at + 4), count: Number(body.readBigUInt64LE(at + 8)), offset: Number(body.readBigInt64LE(at + 16)) });
  }
  return out;
}

describe('compactTrace', () => {
  it('sorts and merges each layer’s reads across small gaps', () => {
    const KiB = 1024;
    const input = trace([
      { layer: 1, offset: 512 * KiB, count: 128 * KiB }, // 256 KiB after the run below
      { layer: 0, offset: 0, count: 4 * KiB },
      { layer: 1, offset: 0, count: 128 * KiB },
      { layer: 1, offset: 128 * KiB, count: 128 * KiB }, // adjacent
      { layer: 1, offset: 64 * KiB, count: 16 * KiB }, // inside
      { op: 'W', layer: 1, offset: 0, count: 4 * KiB },
      { layer: 1, offset: 8192 * KiB, count: 4 * KiB }, // far away
      { layer: 0, offset: 200 * KiB, count: 4 * KiB }, // within 256 KiB of the first
    ]);
    const r = compactTrace(input, 256 * KiB);
    expect(r.before).toBe(8);
    expect(records(r.trace)).toEqual([
      { op: 'R', layer: 0, offset: 0, count: 204 * KiB },
      { op: 'R', layer: 1, offset: 0, count: 640 * KiB },
      { op: 'R', layer: 1, offset: 8192 * KiB, count: 4 * KiB },
      { op: 'W', layer: 1, offset: 0, count: 4 * KiB },
    ]);
    expect(r.after).toBe(4);
    // gap 0: only overlapping or touching reads merge.
    expect(records(compactTrace(input, 0).trace).filter((x) => x.layer === 1 && x.op === 'R')).toHaveLength(3);
  });

  it('leaves a priority list alone and refuses a damaged trace', () => {
    const list = Buffer.from('/usr/bin/\n/etc/debian_version\n');
    expect(compactTrace(list)).toEqual({ trace: list, before: 0, after: 0 });
    const bad = trace([{ layer: 0, offset: 0, count: 4096 }]);
    bad[30] = bad[30]! ^ 1;
    expect(() => compactTrace(bad, 0, 'x')).toThrow(/x: checksum mismatch/);
    expect(() => compactTrace(bad.subarray(0, 40), 0, 'y')).toThrow(/y: 40 bytes, the header says 24 \+ 24/);
  });
});
