import { loadImageConfig } from '../config.js';
import { applyLayer, type Ext4Device } from '../ext4/index.js';
import { intFlag, parse, usageError, type Command } from './run.js';

export const applyCommand: Command = {
  name: 'overlaybd-apply',
  summary: 'apply an OCI layer tar onto the ext4 filesystem of an image',
  usage: `usage: overlaybd-apply [--mkfs] [--vsize GB] [--raw] [--verbose] LAYER CONFIG
  LAYER      an OCI layer: tar, tar.gz or tar.zst (detected), a FIFO, or - for stdin
  CONFIG     a config.v1.json: lowers[].file bottom first, upper.data/index the
             writable layer receiving the changes; with --raw, a raw image file
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
      verbose: { type: 'boolean' },
    });
    if (positionals.length !== 2) throw usageError(`expected LAYER CONFIG, got ${positionals.length} arguments`);
    const [layer, config] = positionals as [string, string];
    const vsizeGB = values.vsize === undefined ? undefined : intFlag('--vsize', values.vsize, 0);
    if (vsizeGB !== undefined && vsizeGB <= 0) throw usageError('--vsize must be a positive whole number of GiB');
    if (vsizeGB !== undefined && !values.mkfs) throw usageError('--vsize only applies with --mkfs');
    const device: Ext4Device = values.raw ? { raw: config } : (await loadImageConfig(config)).spec;
    if (!('raw' in device) && !device.upper) throw usageError(`${config}: no upper layer to apply onto`);
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
    });
    if (values.verbose) {
      const s = (Date.now() - started) / 1000;
      process.stderr.write(
        `overlaybd-apply: done: ${r.entries} entries (${r.files} files, ${r.dirs} dirs, ${r.whiteouts} whiteouts), ` +
          `${(r.tarBytes / 2 ** 20).toFixed(1)} MiB in ${s.toFixed(2)} s, ${(r.bytesWritten / 2 ** 20).toFixed(1)} MiB written\n`,
      );
    }
  },
};
