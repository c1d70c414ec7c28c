import { createLayer } from '../layer.js';
import { intFlag, parse, removeOutputsOnSignals, usageError, type Command } from './run.js';

const GiB = 1024 ** 3;

export const createCommand: Command = {
  name: 'overlaybd-create',
  summary: 'create an empty writable layer',
  usage: `usage: overlaybd-create [-u PARENT_UUID] [--uuid UUID] [-s] [--mkfs] DATA_FILE INDEX_FILE VSIZE_GB
  -u, --parent-uuid  parent layer UUID recorded in the headers
      --uuid         this layer's UUID (random by default)
  -s, --sparse       sparse layer: one data file holding the device image
      --mkfs         make an ext4 filesystem on the new layer (user space)
The files must not exist; they appear only when complete. VSIZE_GB is the virtual device size in GiB.`,
  async main(argv) {
    const { values, positionals } = parse(argv, {
      'parent-uuid': { type: 'string', short: 'u' },
      uuid: { type: 'string' },
      sparse: { type: 'boolean', short: 's' },
      mkfs: { type: 'boolean' },
      verbose: { type: 'boolean' },
    });
    if (positionals.length !== 3) throw usageError(`expected DATA_FILE INDEX_FILE VSIZE_GB, got ${positionals.length} arguments`);
    const [data, index, vsize] = positionals as [string, string, string];
    const gb = intFlag('VSIZE_GB', vsize, 0);
    if (gb <= 0) throw usageError('VSIZE_GB must be a positive whole number of GiB');
    removeOutputsOnSignals();
    await createLayer({
      data,
      index,
      virtualSize: gb * GiB,
      sparse: values.sparse ?? false,
      ...(values.uuid ? { uuid: values.uuid } : {}),
      ...(values['parent-uuid'] ? { parentUuid: values['parent-uuid'] } : {}),
      mkfs: values.mkfs ?? false,
    });
  },
};
