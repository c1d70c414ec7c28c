// The error codes of the core (cpp/common/status.h) and of lib/errors.ts are
// one list: same names, same categories.
import { describe, expect, it } from 'vitest';
import { native } from '../lib/native.js';
import { NATIVE_ERROR_CODES, OverlaybdError, categoryOf } from '../lib/errors.js';

describe('error codes', () => {
  it('match the core list with the same categories', () => {
    const fromCore = { ...(native().errorCodes as Record<string, string>) };
    delete fromCore.OK;
    expect(fromCore).toEqual(NATIVE_ERROR_CODES);
    // The same order, so a diff of the two lists reads as one.
    expect(Object.keys(fromCore)).toEqual(Object.keys(NATIVE_ERROR_CODES));
  });

  it('give every error a category', () => {
    expect(new OverlaybdError('ZFILE_CRC_MISMATCH', 'x').category).toBe('corrupt');
    expect(new OverlaybdError('REGISTRY_RATE_LIMITED', 'x').category).toBe('transient');
    expect(categoryOf('NOT_A_CODE')).toBe('internal');
  });
});
