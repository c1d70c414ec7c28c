import { localSpec, resolveImageConfig } from '../config.js';
import { applyLayer, type Ext4Device } from '../ext4/index.js';
import type { Image } from '../image.js';
import { openResolvedConfig } from '../service/open-config.js';
import { intFlag, parse, usageError, type Command } from './run.js';

/**
 * The image CONFIG describes, to apply onto: its local layers as a spec (an
 * upper --mkfs may still create), or, when a lower is remote, the image
 * opened through the image service (`global`: --service_config_path), which
 * reads remote lowers on demand.
 */
async function openTarget(config: string, global: string | undefined): Promise<{ device: Ext4Device; image?: Image }> {
  const r = await resolveImageConfig(config);
  if (!r.upper) throw usageError(`${config}: no upper layer to apply onto`);
  const spec = localSpec(r);
  if (spec) return { device: spec };
  const image = await openResolvedConfig(config, r, { ...(global !== undefined ? { global } : {}), autoPrefetch: false, reportResult: false, recordTrace: false });
  return { device: { image }, image };
}

export const applyCommand: Command = {
  name: 'overlaybd-apply',
  summary: 'apply an OCI layer tar onto the ext4 filesystem of an image',
  usage: `usage: overlaybd-apply [--mkfs] [--vsize GB] [--raw] [--service_config_path F] [--verbose] LAYER CONFIG
  LAYER      an OCI layer: tar, tar.gz or tar.zst (detected), a FIFO, or - for stdin
  CONFIG     a config.v1.json: lowers bottom first (local files, or remote blobs
             under repoBlobUrl), upper.data/index the writable layer receiving
             the changes; with --raw, a raw image file
      --service_config_path F
                 overlaybd.json for reading remote lowers (cache, credentials;
                 default /etc/overlaybd/overlaybd.json when it exists; unused
                 when every lower is local)
      --mkfs     make the ext4 filesystem first (a missing upper or raw file is
                 created with --vsize GiB, default 64)
      --vsize    virtual size in GiB for --mkfs
      --raw      CONFIG is a raw image file
      --verbose  report progress on stderr`,
  async main(argv) {
    const { values, positionals } = parse(argv, {
      mkfs: { type: 'boolean' },
      vsize: { type: 'string' },
      raw: { type: 'boolean' },
      service_config_path: { type: 'string' },
      verbose: { type: 'boolean' },
    });
    if (positionals.length !== 2) throw usageError(`expected LAYER CONFIG, got ${positionals.length} arguments`);
    const [layer, config] = positionals as [string, string];
    const vsizeGB = values.vsize === undefined ? undefined : intFlag('--vsize', values.vsize, 0);
    if (vsizeGB !== undefined && vsizeGB <= 0) throw usageError('--vsize must be a positive whole number of GiB');
    if (vsizeGB !== undefined && !values.mkfs) throw usageError('--vsize only applies with --mkfs');
    if (values.raw && values.service_config_path !== undefined) throw usageError('--service_config_path does not apply to a --raw image');
    const { device, image } = values.raw ? { device: { raw: config } as Ext4Device, image: undefined } : await openTarget(config, values.service_config_path);
    const started = Date.now();
    const r = await applyLayer(device, layer, {
      mkfs: values.mkfs ?? false,
      ...(vsizeGB !== undefined ? { vsizeGB } : {}),
      ...(values.verbose
        ? {
            onProgress: (p) =>
              process.stderr.write(`overlaybd-apply: ${p.entries} entries, ${(p.tarBytes / 2 ** 20).toFixed(1)} MiB of tar\n`),
          }
        : {}),
    }).finally(() => image?.close());
    if (values.verbose) {
      const s = (Date.now() - started) / 1000;
      process.stderr.write(
        `overlaybd-apply: done: ${r.entries} entries (${r.files} files, ${r.dirs} dirs, ${r.whiteouts} whiteouts), ` +
          `${(r.tarBytes / 2 ** 20).toFixed(1)} MiB in ${s.toFixed(2)} s, ${(r.bytesWritten / 2 ** 20).toFixed(1)} MiB written\n`,
      );
    }
  },
};
