/**
 * The one place the convertor touches the filesystem engine: apply an OCI
 * layer tar onto the ext4 of an image stack (making the filesystem first on
 * the bottom layer). Kept apart so the pipeline can be tested with a fake.
 */
import { feedThroughPipe, type LayerStream } from '../archive.js';
import { applyLayer } from '../ext4/index.js';

export interface ApplyRequest {
  /** Committed lower layers, bottom first. */
  lowers: string[];
  upper: { data: string; index: string };
  /** Tar, tar.gz or tar.zst: a file, or a stream whose digests are checked as it is applied. */
  input: string | LayerStream;
  /** Bottom layer: mkfs with this virtual size first. */
  mkfsVsizeGB?: number;
  onProgress?: (tarBytes: number) => void;
}

export type ApplyFn = (req: ApplyRequest) => Promise<void>;

export const applyWithExt4: ApplyFn = async (req) => {
  const opts = {
    // The upper is an intermediate, committed and deleted next (see buildLayer).
    sync: false,
    ...(req.mkfsVsizeGB !== undefined ? { mkfs: true, vsizeGB: req.mkfsVsizeGB } : {}),
    ...(req.onProgress ? { onProgress: (p: { tarBytes: number }) => req.onProgress!(p.tarBytes) } : {}),
  };
  const device = { lowers: req.lowers, upper: req.upper };
  const input = req.input;
  if (typeof input === 'string') await applyLayer(device, input, opts);
  else await feedThroughPipe(input, (pipe) => applyLayer(device, pipe, opts));
};
