/**
 * The one place the convertor touches the filesystem engine: apply an OCI
 * layer tar onto the ext4 of an image stack (making the filesystem first on
 * the bottom layer). Kept apart so the pipeline can be tested with a fake.
 */
import { applyLayer } from '../ext4/index.js';

export interface ApplyRequest {
  /** Committed lower layers, bottom first. */
  lowers: string[];
  upper: { data: string; index: string };
  /** Tar, tar.gz or tar.zst. */
  input: string;
  /** Bottom layer: mkfs with this virtual size first. */
  mkfsVsizeGB?: number;
  onProgress?: (tarBytes: number) => void;
}

export type ApplyFn = (req: ApplyRequest) => Promise<void>;

export const applyWithExt4: ApplyFn = async (req) => {
  await applyLayer({ lowers: req.lowers, upper: req.upper }, req.input, {
    ...(req.mkfsVsizeGB !== undefined ? { mkfs: true, vsizeGB: req.mkfsVsizeGB } : {}),
    ...(req.onProgress ? { onProgress: (p: { tarBytes: number }) => req.onProgress!(p.tarBytes) } : {}),
  });
};
