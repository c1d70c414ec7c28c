/**
 * The image convertor: turns an OCI or Docker image (manifest or index) in a
 * registry into a native overlaybd image in the same repository, as
 * upstream's standalone `convertor` does.
 *
 *   const store = await openDedupStore({ dbType: 'sqlite' });
 *   const r = await convert({ repository: 'host/app', inputTag: 'v1', overlaybdTag: 'v1_obd' },
 *                           { client: new RegistryClient(...), store, logger });
 */
import type { ApplyFn } from './apply.js';
import { runConversion, type ConvertResult } from './graph.js';
import { parseConvertOptions, type ConvertDeps, type ConvertOptionsInput } from './options.js';

export { parseConvertOptions, ConvertOptionsSchema, type ConvertOptions, type ConvertOptionsInput, type ConvertDeps } from './options.js';
export type { ConvertResult } from './graph.js';
export type { ManifestReport, LayerReport } from './pipeline.js';
export { chainIds, uuidFromChainId } from './chain.js';
export * from './media.js';
export { logProgress, ttyProgress, silentProgress, type ProgressSink, type ProgressEvent, type Stage } from './progress.js';
export { applyWithExt4, type ApplyFn, type ApplyRequest } from './apply.js';
export { openDedupStore } from './db/open.js';
export type { DedupStore } from './db/types.js';

export async function convert(input: ConvertOptionsInput, deps: ConvertDeps & { apply?: ApplyFn }): Promise<ConvertResult> {
  return runConversion(parseConvertOptions(input), deps);
}
