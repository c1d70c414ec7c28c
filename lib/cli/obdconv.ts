/**
 * `overlaybd obdconv`: upstream's `ctr obdconv SRC DST`, converting an image
 * in containerd's content store into an overlaybd image DST there.
 */
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE, parsePlatform } from '../containerd/index.js';
import { obdconv } from '../containerd/obdconv.js';
import { parse, untilSignal, usageError, type Command } from './run.js';

function intFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw usageError(`--${name} wants a whole number, got '${v}'`);
  return Number(v);
}

export const obdconvCommand: Command = {
  name: 'overlaybd obdconv',
  summary: 'convert an image in containerd into an overlaybd image',
  usage: `usage: overlaybd obdconv [options] SRC DST
Converts image SRC, already in containerd's content store (this host's
platform), into an overlaybd image DST in the same namespace: each layer is
built in user space (ext4 through libext2fs) and committed as a ZFile
overlaybd layer; layers, config and manifest go into containerd's content
store, then the image record DST. Push it with ctr images push.
  -a, --address SOCK     containerd socket (default $CONTAINERD_ADDRESS or ${DEFAULT_ADDRESS})
  -n, --namespace NS     containerd namespace (default $CONTAINERD_NAMESPACE or ${DEFAULT_NAMESPACE})
      --fstype T         filesystem: ext4, optionally ext4;mountopts (default ext4)
      --vsize GB         virtual block device size in GB (default 64)
      --platform P       os/arch[/variant] to take from an index (default: this host)
      --dbstr DSN        remote dedup mode: not supported (rejected)
      --algorithm A      accepted and ignored, as upstream (layers use lz4)
      --bs KB            accepted and ignored, as upstream (4 KiB blocks)`,
  async main(argv) {
    const { values: v, positionals } = parse(argv, {
      address: { type: 'string', short: 'a' },
      namespace: { type: 'string', short: 'n' },
      fstype: { type: 'string' },
      vsize: { type: 'string' },
      platform: { type: 'string' },
      dbstr: { type: 'string' },
      algorithm: { type: 'string' },
      bs: { type: 'string' },
    });
    if (positionals.length !== 2) {
      throw usageError(positionals.length < 2 ? 'a source and a destination image are required' : `unexpected argument '${positionals[2]}'`);
    }
    const env = process.env;
    await untilSignal('overlaybd obdconv', async (signal) => {
      const vsize = intFlag('vsize', v.vsize);
      const bs = intFlag('bs', v.bs);
      const r = await obdconv({
        signal,
        src: positionals[0]!,
        dst: positionals[1]!,
        address: v.address ?? (env.CONTAINERD_ADDRESS || DEFAULT_ADDRESS),
        namespace: v.namespace ?? (env.CONTAINERD_NAMESPACE || DEFAULT_NAMESPACE),
        ...(v.fstype !== undefined ? { fsType: v.fstype } : {}),
        ...(vsize !== undefined ? { vsizeGB: vsize } : {}),
        ...(v.platform !== undefined ? { platform: parsePlatform(v.platform) } : {}),
        ...(v.dbstr !== undefined ? { dbstr: v.dbstr } : {}),
        ...(v.algorithm !== undefined ? { algorithm: v.algorithm } : {}),
        ...(bs !== undefined ? { bs } : {}),
        progress: (line) => process.stderr.write(line + '\n'),
      });
      process.stdout.write(`${r.target.digest}\n`);
    });
  },
};
