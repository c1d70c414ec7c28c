/**
 * The live snapshot check the TCMU and ublk guest scripts share: A (2 MiB
 * at 1 GiB) is written through the device, the snapshot seals the upper,
 * then B (2 MiB at 1 GiB + 1 MiB, over A's second half) is written. This
 * makes A and B and, afterwards, reads back what each layer holds.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openImage } from '../../lib/image.js';

const GiB = 1024 ** 3;
const MiB = 1 << 20;

/** Writes `<share>/snap-a.bin` and `<share>/snap-b.bin` (random, 2 MiB each). */
export function writeSnapshotData(share: string): void {
  for (const name of ['snap-a.bin', 'snap-b.bin']) fs.writeFileSync(path.join(share, name), randomBytes(2 * MiB));
}

export interface SnapshotOutcome {
  /** sha256 of the 3 MiB the device must read at 1 GiB after both writes. */
  deviceSha: string;
  /** The sealed upper (over the lower) holds A. */
  sealedHoldsA: boolean;
  /** The new upper over the sealed one holds A's first half, then B. */
  freshHoldsAB: boolean;
}

/** Reads the layers the guest left in `share`: `lower` + `sealed` data file (+ `upper`). */
export async function snapshotOutcome(
  share: string,
  lower: string,
  sealed: string,
  upper: { data: string; index: string },
): Promise<SnapshotOutcome> {
  const a = fs.readFileSync(path.join(share, 'snap-a.bin'));
  const b = fs.readFileSync(path.join(share, 'snap-b.bin'));
  const want = Buffer.concat([a.subarray(0, MiB), b]);
  const sealedImg = await openImage({ lowers: [lower, sealed] });
  const freshImg = await openImage({ lowers: [lower, sealed], upper });
  try {
    return {
      deviceSha: createHash('sha256').update(want).digest('hex'),
      sealedHoldsA: (await sealedImg.read(GiB, 2 * MiB)).equals(a),
      freshHoldsAB: (await freshImg.read(GiB, 3 * MiB)).equals(want),
    };
  } finally {
    await sealedImg.close();
    await freshImg.close();
  }
}
