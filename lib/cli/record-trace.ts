/**
 * `overlaybd record-trace`: upstream's `ctr record-trace [flags] OLD_IMAGE
 * NEW_IMAGE [COMMAND...]`, through containerd's gRPC API, then a push of
 * NEW_IMAGE (ours; upstream leaves the push to the user).
 */
import { constants } from 'node:os';
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE, DEFAULT_SNAPSHOTTER, parsePlatform } from '../containerd/index.js';
import { DEFAULT_WORKING_DIR, recordTrace } from '../containerd/record-trace.js';
import { DEFAULT_CNI_PLUGIN_DIR } from '../containerd/cni-network.js';
import { DEFAULT_RUNTIME } from '../containerd/tasks.js';
import { REGISTRY_OPTIONS, REGISTRY_VALUE_FLAGS, registryClientFrom, registryUsage } from './registry-flags.js';
import { parse, usageError, type Command } from './run.js';

export const recordTraceCommand: Command = {
  name: 'overlaybd record-trace',
  summary: 'record a trace of a command in a container, push an image that prefetches it',
  usage: `usage: overlaybd record-trace [options] OLD_IMAGE NEW_IMAGE [COMMAND [ARG...]]
Runs COMMAND (default: the image's entrypoint and cmd) in a container of
OLD_IMAGE, an overlaybd image pulled with overlaybd rpull, while the image
service records the blocks it reads; stops it when it ends or after --time;
then makes NEW_IMAGE = OLD_IMAGE's layers + an acceleration layer holding the
trace (in containerd) and pushes it to its registry. Starts of NEW_IMAGE
prefetch the traced blocks. Options go before OLD_IMAGE. The first Ctrl-C
ends the recording early (SIGTERM to the task); a second one aborts.
  -a, --address SOCK           containerd socket (default $CONTAINERD_ADDRESS or ${DEFAULT_ADDRESS})
  -n, --namespace NS           containerd namespace (default $CONTAINERD_NAMESPACE or ${DEFAULT_NAMESPACE})
      --time SEC               record time: SIGTERM after it, SIGKILL after as long again (default 60; not 0)
      --priority_list FILE     a list of absolute paths to prefetch instead of a trace (no command runs)
      --working-dir DIR        where the trace file is made (default ${DEFAULT_WORKING_DIR})
      --snapshotter NAME       snapshotter (default $CONTAINERD_SNAPSHOTTER or ${DEFAULT_SNAPSHOTTER})
      --runtime NAME           runtime (default ${DEFAULT_RUNTIME})
      --disable-network-isolation
                               run on the host's network (default: a network namespace on the CNI bridge r-trace-br0)
      --cni-plugin-dir DIR     the CNI plugins for the bridge r-trace-br0 (default ${DEFAULT_CNI_PLUGIN_DIR},
                               else /usr/lib/cni where Debian's containernetworking-plugins are)
      --max-concurrent-downloads N
                               accepted, unused (as upstream)
      --platform P             os/arch[/variant] of OLD_IMAGE to use (default: this host)
      --no-push                leave NEW_IMAGE in containerd only (upstream's behaviour)
${registryUsage(31, ' (push)')}`,
  async main(argv) {
    // Options end at OLD_IMAGE: the command's own flags are not ours (upstream's SkipArgReorder).
    const first = firstPositional(argv);
    const { values: v, positionals } = parse(argv.slice(0, first), {
      address: { type: 'string', short: 'a' },
      namespace: { type: 'string', short: 'n' },
      time: { type: 'string' },
      priority_list: { type: 'string' },
      'working-dir': { type: 'string' },
      snapshotter: { type: 'string' },
      runtime: { type: 'string' },
      'disable-network-isolation': { type: 'boolean' },
      'cni-plugin-dir': { type: 'string' },
      'max-concurrent-downloads': { type: 'string' },
      platform: { type: 'string' },
      'no-push': { type: 'boolean' },
      ...REGISTRY_OPTIONS,
    });
    const rest = [...positionals, ...argv.slice(first)];
    if (rest.length < 2) throw usageError(rest.length === 0 ? 'OLD_IMAGE and NEW_IMAGE are required' : 'NEW_IMAGE is required');
    const [oldImage, newImage, ...args] = rest as [string, string, ...string[]];
    const time = v.time ?? '60';
    if (!/^\d+$/.test(time)) throw usageError(`--time wants whole seconds, got '${time}'`);
    if (Number(time) === 0) throw usageError("--time can't be 0");
    if (v.priority_list !== undefined && args.length > 0) throw usageError('--priority_list and a COMMAND exclude each other');
    const env = process.env;
    const registry = v['no-push'] ? undefined : registryClientFrom(v);

    // First SIGINT/SIGTERM: end the recording (the image is still made). Second: abort and clean up.
    const stop = new AbortController();
    const abort = new AbortController();
    let abortedBy: NodeJS.Signals | undefined;
    const onSignal = (sig: NodeJS.Signals) => {
      if (!stop.signal.aborted) {
        process.stderr.write(`received ${sig}: ending the recording (again to abort)\n`);
        stop.abort();
      } else {
        abortedBy ??= sig;
        abort.abort(new Error(`interrupted by ${sig}`));
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await recordTrace({
        oldImage,
        newImage,
        args,
        timeSec: Number(time),
        address: v.address ?? (env.CONTAINERD_ADDRESS || DEFAULT_ADDRESS),
        namespace: v.namespace ?? (env.CONTAINERD_NAMESPACE || DEFAULT_NAMESPACE),
        snapshotter: v.snapshotter ?? (env.CONTAINERD_SNAPSHOTTER || DEFAULT_SNAPSHOTTER),
        ...(v.priority_list !== undefined ? { priorityList: v.priority_list } : {}),
        ...(v['working-dir'] !== undefined ? { workingDir: v['working-dir'] } : {}),
        ...(v.runtime !== undefined ? { runtime: v.runtime } : {}),
        ...(v.platform !== undefined ? { platform: parsePlatform(v.platform) } : {}),
        hostNetwork: v['disable-network-isolation'] ?? false,
        ...(v['cni-plugin-dir'] !== undefined ? { cniPluginDir: v['cni-plugin-dir'] } : {}),
        ...(registry ? { push: registry } : {}),
        stop: stop.signal,
        signal: abort.signal,
        progress: (line) => process.stderr.write(line + '\n'),
      });
    } catch (e) {
      if (!abortedBy) throw e;
      process.stderr.write(`overlaybd record-trace: interrupted by ${abortedBy}\n`);
      process.exitCode = 128 + constants.signals[abortedBy];
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await registry?.close();
    }
  },
};

const VALUE_FLAGS = new Set([
  '-a', '--address', '-n', '--namespace', '--time', '--priority_list', '--working-dir', '--snapshotter', '--runtime',
  '--cni-plugin-dir', '--max-concurrent-downloads', '--platform', ...REGISTRY_VALUE_FLAGS,
]);

/** Index of the first argument that is not an option or an option's value (OLD_IMAGE), or argv.length. */
function firstPositional(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return i + 1;
    if (!a.startsWith('-') || a === '-') return i;
    if (VALUE_FLAGS.has(a)) i++;
  }
  return argv.length;
}
