/**
 * Chain IDs (the identity of a layer stack, from the image config's
 * diff_ids) and the LSMT uuids upstream derives from them.
 */
import { sha256Digest } from '../registry/digest.js';
import { OverlaybdError } from '../errors.js';

/** chainID[0] = diffID[0]; chainID[i] = sha256(chainID[i-1] + " " + diffID[i]). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    if (!/^sha256:[0-9a-f]{64}$/.test(d)) throw new OverlaybdError('CONVERT_FAILED', `diff_id "${d}" is not a sha256 digest`);
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256Digest(`${prev} ${d}`));
  }
  return out;
}

/** The first 32 hex digits of a chain ID as 8-4-4-4-12: the uuid of that layer's LSMT file. */
export function uuidFromChainId(chainId: string): string {
  const hex = chainId.slice(chainId.indexOf(':') + 1);
  if (!/^[0-9a-f]{32}/.test(hex)) throw new OverlaybdError('CONVERT_FAILED', `chain ID "${chainId}" has no 32 hex digits`);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
