/**
 * The one error class of @dadi/overlaybd. `code` is stable and documented;
 * `message` names the file, offset and field involved. Native code throws
 * this same class (registered with the addon at load time).
 */
export const ERROR_CODES = [
  'EINVAL',
  'EIO',
  'ENOENT',
  'EEXIST',
  'ENOSPC',
  'EROFS',
  'ENOTSUP',
  'OUT_OF_RANGE',
  'UNALIGNED',
  'LSMT_BAD_MAGIC',
  'LSMT_BAD_HEADER',
  'LSMT_BAD_INDEX',
  'LSMT_INDEX_TOO_LARGE',
  'LSMT_TRUNCATED',
  'LSMT_NOT_SEALED',
  'LSMT_TOO_MANY_LAYERS',
  'ZFILE_BAD_MAGIC',
  'ZFILE_BAD_HEADER',
  'ZFILE_DIGEST_MISMATCH',
  'ZFILE_INDEX_CRC_MISMATCH',
  'ZFILE_BAD_INDEX',
  'ZFILE_CRC_MISMATCH',
  'ZFILE_DECOMPRESS_FAILED',
  'ZFILE_TRUNCATED',
  'TAR_BAD_HEADER',
  'TAR_TRUNCATED',
  'TAR_UNSAFE_PATH',
  'GZIP_CORRUPT',
  'ZSTD_CORRUPT',
  'EXT4_ERROR',
  'INTERNAL',
  // TypeScript-side codes.
  'CONFIG_INVALID',
  'USAGE',
  'REGISTRY_UNAUTHORIZED',
  'REGISTRY_DENIED',
  'REGISTRY_NOT_FOUND',
  'REGISTRY_RATE_LIMITED',
  'REGISTRY_ERROR',
  'REGISTRY_UNREACHABLE',
  'DIGEST_MISMATCH',
  'CONVERT_FAILED',
  'DB_ERROR',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class OverlaybdError extends Error {
  override name = 'OverlaybdError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isOverlaybdError(e: unknown, code?: ErrorCode): e is OverlaybdError {
  return e instanceof OverlaybdError && (code === undefined || e.code === code);
}
