/**
 * Compacts a recorded trace before it goes into the acceleration layer. The
 * recorder writes one record per read the device made (kernel readahead
 * sized, in time order), and a replay issues one read per record, so a
 * replay fetched about as many registry ranges as the run it recorded. Here
 * the reads of each layer are sorted by offset and merged when they overlap
 * or lie within `gap` bytes of each other: the replay then reads long runs,
 * and the blob cache fetches each run's missing refill units in one request.
 * The file stays in the binary trace format (format spec §6.4); write
 * records are kept as they are. A file that is not a binary trace (a
 * priority list) is returned unchanged.
 */
import { OverlaybdError } from '../errors.js';

const MAGIC = 0xc2ef1820;
const HEADER = 24;
const RECORD = 24;
const OP_READ = 'R'.charCodeAt(0);

/** Merge reads whose gap is at most this (bytes of the decompressed layer file). */
export const DEFAULT_TRACE_GAP = 256 << 10;

interface Rec {
  op: number;
  layer: number;
  count: bigint;
  offset: bigint;
}

let table: Uint32Array | undefined;

/** The raw CRC-32C register update of the spec's U(c, bytes): no inversion before or after. */
function crc32c(crc: number, bytes: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = crc >>> 0;
  for (const b of bytes) c = (table[(c ^ b) & 0xff]! ^ (c >>> 8)) >>> 0;
  return c >>> 0;
}

export function isBinaryTrace(buf: Buffer): boolean {
  return buf.length >= HEADER && buf.readUInt32LE(0) === MAGIC;
}

function decode(buf: Buffer, what: string): Rec[] {
  const size = buf.readBigUInt64LE(8);
  if (BigInt(buf.length) !== BigInt(HEADER) + size || size % BigInt(RECORD) !== 0n) {
    throw new OverlaybdError('TRACE_CORRUPT', `${what}: ${buf.length} bytes, the header says ${HEADER} + ${size}`);
  }
  const body = buf.subarray(HEADER);
  if (crc32c(0, body) !== buf.readUInt32LE(16)) throw new OverlaybdError('TRACE_CORRUPT', `${what}: checksum mismatch`);
  const out: Rec[] = [];
  for (let at = 0; at < body.length; at += RECORD) {
    out.push({ op: body[at]!, layer: body.readUInt32LE(at + 4), count: body.readBigUInt64LE(at + 8), offset: body.readBigInt64LE(at + 16) });
  }
  return out;
}

function encode(recs: Rec[]): Buffer {
  const body = Buffer.alloc(RECORD * recs.length);
  recs.forEach((r, i) => {
    const at = i * RECORD;
    body.writeUInt8(r.op, at);
    body.writeUInt32LE(r.layer, at + 4);
    body.writeBigUInt64LE(r.count, at + 8);
    body.writeBigInt64LE(r.offset, at + 16);
  });
  const head = Buffer.alloc(HEADER);
  head.writeUInt32LE(MAGIC, 0);
  head.writeBigUInt64LE(BigInt(body.length), 8);
  head.writeUInt32LE(crc32c(0, body), 16);
  return Buffer.concat([head, body]);
}

export interface CompactResult {
  trace: Buffer;
  /** Records before and after (0 and 0 for a file that is not a binary trace). */
  before: number;
  after: number;
}

export function compactTrace(buf: Buffer, gap = DEFAULT_TRACE_GAP, what = 'trace'): CompactResult {
  if (!isBinaryTrace(buf)) return { trace: buf, before: 0, after: 0 };
  const recs = decode(buf, what);
  const reads = recs.filter((r) => r.op === OP_READ && r.count > 0n && r.offset >= 0n);
  const others = recs.filter((r) => !reads.includes(r));
  reads.sort((a, b) => a.layer - b.layer || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  const merged: Rec[] = [];
  const g = BigInt(gap);
  for (const r of reads) {
    const last = merged.at(-1);
    if (last && last.layer === r.layer && r.offset <= last.offset + last.count + g) {
      const end = r.offset + r.count > last.offset + last.count ? r.offset + r.count : last.offset + last.count;
      last.count = end - last.offset;
    } else merged.push({ ...r });
  }
  const out = [...merged, ...others];
  return { trace: encode(out), before: recs.length, after: out.length };
}
