/**
 * The one error class of @dadi/overlaybd. `code` is stable and documented;
 * `message` names the file, offset and field involved. Native code throws
 * this same class (registered with the addon at load time).
 *
 * Each code has a category saying what a caller may do about it (retry,
 * evict and refetch, ...). The native codes and their categories are the
 * core's list in cpp/common/status.h; test/errors.test.ts checks that this
 * table matches the one the addon exports. Classify by `code` or
 * `category`, never by matching message text.
 */
export const ERROR_CATEGORIES = [
  'transient',
  'corrupt',
  'not_found',
  'invalid_argument',
  'unsupported',
  'closed',
  'busy',
  'io',
  'internal',
] as const;
export type ErrorCategory = (typeof ERROR_CATEGORIES)[number];

/** The core's codes (cpp/common/status.h), in its order. */
export const NATIVE_ERROR_CODES = {
  EINVAL: 'invalid_argument',
  EIO: 'io',
  EAGAIN: 'transient',
  ETIMEDOUT: 'transient',
  ENOENT: 'not_found',
  EEXIST: 'invalid_argument',
  EPERM: 'invalid_argument',
  EBUSY: 'busy',
  CLOSED: 'closed',
  ENOSPC: 'io',
  EPIPE: 'io',
  EROFS: 'invalid_argument',
  ENOTSUP: 'unsupported',
  OUT_OF_RANGE: 'invalid_argument',
  UNALIGNED: 'invalid_argument',
  LSMT_BAD_MAGIC: 'corrupt',
  LSMT_BAD_HEADER: 'corrupt',
  LSMT_BAD_INDEX: 'corrupt',
  LSMT_INDEX_TOO_LARGE: 'corrupt',
  LSMT_TRUNCATED: 'corrupt',
  LSMT_NOT_SEALED: 'invalid_argument',
  LSMT_TOO_MANY_LAYERS: 'invalid_argument',
  ZFILE_BAD_MAGIC: 'corrupt',
  ZFILE_BAD_HEADER: 'corrupt',
  ZFILE_DIGEST_MISMATCH: 'corrupt',
  ZFILE_INDEX_CRC_MISMATCH: 'corrupt',
  ZFILE_BAD_INDEX: 'corrupt',
  ZFILE_CRC_MISMATCH: 'corrupt',
  ZFILE_DECOMPRESS_FAILED: 'corrupt',
  ZFILE_TRUNCATED: 'corrupt',
  TAR_BAD_HEADER: 'corrupt',
  TAR_TRUNCATED: 'corrupt',
  TAR_UNSAFE_PATH: 'invalid_argument',
  GZIP_CORRUPT: 'corrupt',
  ZSTD_CORRUPT: 'corrupt',
  EXT4_ERROR: 'corrupt',
  TRACE_CORRUPT: 'corrupt',
  DIGEST_MISMATCH: 'corrupt',
  INTERNAL: 'internal',
} as const satisfies Record<string, ErrorCategory>;

/** Codes raised by the TypeScript side only. */
export const TS_ERROR_CODES = {
  CONFIG_INVALID: 'invalid_argument',
  USAGE: 'invalid_argument',
  REGISTRY_UNAUTHORIZED: 'invalid_argument',
  REGISTRY_DENIED: 'invalid_argument',
  REGISTRY_NOT_FOUND: 'not_found',
  REGISTRY_RATE_LIMITED: 'transient',
  REGISTRY_ERROR: 'io',
  REGISTRY_UNREACHABLE: 'transient',
  CONTAINERD_ERROR: 'io',
  CONTAINERD_UNREACHABLE: 'transient',
  CONVERT_FAILED: 'internal',
  DB_ERROR: 'io',
  // A snapshot in the wrong state for the call (containerd's ErrFailedPrecondition).
  FAILED_PRECONDITION: 'invalid_argument',
} as const satisfies Record<string, ErrorCategory>;

const CATEGORY_OF: Record<string, ErrorCategory> = { ...NATIVE_ERROR_CODES, ...TS_ERROR_CODES };

export type ErrorCode = keyof typeof NATIVE_ERROR_CODES | keyof typeof TS_ERROR_CODES;
export const ERROR_CODES = Object.keys(CATEGORY_OF) as ErrorCode[];

/** The category of a code (`internal` for one this version does not know). */
export function categoryOf(code: string): ErrorCategory {
  return CATEGORY_OF[code] ?? 'internal';
}

export class OverlaybdError extends Error {
  override name = 'OverlaybdError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** What a caller may do about this error; derived from `code`. */
  get category(): ErrorCategory {
    return categoryOf(this.code);
  }
}

export function isOverlaybdError(e: unknown, code?: ErrorCode): e is OverlaybdError {
  return e instanceof OverlaybdError && (code === undefined || e.code === code);
}
