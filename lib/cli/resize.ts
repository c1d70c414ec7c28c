import { parseSizeGB, resizeImage } from '../device/resize.js';
import { parse, usageError, type Command } from './run.js';

export const resizeCommand: Command = {
  name: 'overlaybd-resize',
  summary: "resize an image's writable upper and the ext4 filesystem on it",
  usage: `usage: overlaybd-resize --config CONFIG.json --size GB [--service_config_path overlaybd.json] [--verbose]
  --config               the image's config.v1.json; it must have an upper layer, not in use by a device
  --size                 the new virtual size in GiB (a whole number); smaller shrinks the filesystem first
  --service_config_path  the global config (also --global), for images with remote lowers
The filesystem is checked (e2fsck -f -p) and resized with resize2fs from e2fsprogs.`,
  async main(argv) {
    const { values, positionals } = parse(argv, {
      config: { type: 'string' },
      size: { type: 'string' },
      service_config_path: { type: 'string' },
      global: { type: 'string' },
      verbose: { type: 'boolean' },
    });
    if (positionals.length) throw usageError(`unexpected argument '${positionals[0]}'`);
    if (!values.config) throw usageError('--config is required');
    if (values.size === undefined) throw usageError('--size is required');
    const gb = parseSizeGB(values.size);
    const global = values.service_config_path ?? values.global;
    const t0 = process.hrtime.bigint();
    const r = await resizeImage(values.config, gb, {
      ...(global !== undefined ? { global } : {}),
      ...(values.verbose ? { log: (l: string) => process.stderr.write(`overlaybd-resize: ${l}\n`) } : {}),
    });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(`Success: filesystem resized to ${r.to / 1024 ** 3} GB (${secs.toFixed(3)} seconds)\n`);
  },
};
