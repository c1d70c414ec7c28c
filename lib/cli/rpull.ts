/**
 * `overlaybd rpull`: upstream's `ctr rpull`, a pull through containerd that
 * leaves overlaybd layers to the snapshotter (no layer blob download).
 */
// Modules by path, not through the indexes: containerd/index.js also loads obdconv and the convertor stack.
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE } from '../containerd/connection.js';
import { parsePlatform } from '../containerd/platform.js';
import { DEFAULT_SNAPSHOTTER, rpull } from '../containerd/pull.js';
import { REGISTRY_OPTIONS, registryClientFrom, registryUsage } from './registry-flags.js';
import { parse, untilSignal, usageError, type Command } from './run.js';

function labelFlags(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    if (i <= 0) throw usageError(`--label wants KEY=VALUE, got '${l}'`);
    out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

export const rpullCommand: Command = {
  name: 'overlaybd rpull',
  summary: 'pull an image through containerd, layers left to a remote snapshotter',
  usage: `usage: overlaybd rpull [options] REF
Pulls REF through containerd's gRPC API (as ctr rpull): index, manifest and
config into its content store, layers unpacked through --snapshotter (an
overlaybd layer is taken remotely: its blob is not fetched), then the image
record. Progress goes to stderr.
  -a, --address SOCK       containerd socket (default $CONTAINERD_ADDRESS or ${DEFAULT_ADDRESS})
  -n, --namespace NS       containerd namespace (default $CONTAINERD_NAMESPACE or ${DEFAULT_NAMESPACE})
      --snapshotter NAME   snapshotter (default $CONTAINERD_SNAPSHOTTER or ${DEFAULT_SNAPSHOTTER})
      --download-blobs     have overlaybd's snapshotter download the layer blobs
      --platform P         os/arch[/variant] to pull from an index (default: this host)
      --label K=V          image record label (repeatable)
${registryUsage(27)}`,
  async main(argv) {
    const { values: v, positionals } = parse(argv, {
      address: { type: 'string', short: 'a' },
      namespace: { type: 'string', short: 'n' },
      snapshotter: { type: 'string' },
      'download-blobs': { type: 'boolean' },
      platform: { type: 'string' },
      label: { type: 'string', multiple: true },
      ...REGISTRY_OPTIONS,
    });
    if (positionals.length !== 1) throw usageError(positionals.length === 0 ? 'an image reference is required' : `unexpected argument '${positionals[1]}'`);
    const env = process.env;
    const registry = registryClientFrom(v);
    // SIGINT/SIGTERM: cancel what is in flight, remove the extraction snapshot and the lease, then exit 128+n.
    try {
      await untilSignal('overlaybd rpull', async (signal) => {
        await rpull({
          signal,
          ref: positionals[0]!,
          registry,
          address: v.address ?? (env.CONTAINERD_ADDRESS || DEFAULT_ADDRESS),
          namespace: v.namespace ?? (env.CONTAINERD_NAMESPACE || DEFAULT_NAMESPACE),
          snapshotter: v.snapshotter ?? (env.CONTAINERD_SNAPSHOTTER || DEFAULT_SNAPSHOTTER),
          downloadBlobs: v['download-blobs'] ?? false,
          ...(v.platform !== undefined ? { platform: parsePlatform(v.platform) } : {}),
          ...(labelFlags(v.label) ? { imageLabels: labelFlags(v.label)! } : {}),
          progress: (line) => process.stderr.write(line + '\n'),
        });
        process.stderr.write('done\n');
      });
    } finally {
      await registry.close();
    }
  },
};
