/**
 * The OCI runtime spec of a container, built as containerd's client does for
 * `ctr run` (oci.WithDefaultSpec, WithDefaultUnixDevices, WithImageConfig,
 * WithProcessArgs): containerd's default Linux spec (mounts, capabilities,
 * namespaces, masked paths), then the image config's env, cwd, args and
 * user. containerd stores it as JSON in a google.protobuf.Any.
 */
import { OverlaybdError } from '../errors.js';
import type { ImageConfig } from '../convertor/spec.js';
import type { ProcessUser } from './image-user.js';

/** typeurl's name of specs.Spec, which containerd marshals as JSON. */
export const SPEC_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

const MOUNTS = [
  { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
  { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
  { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
];

/** Host files a container on the host network needs (ctr run --net-host). */
const HOST_NET_MOUNTS = ['/etc/hosts', '/etc/resolv.conf'].map((f) => ({ destination: f, type: 'bind', source: f, options: ['rbind', 'ro'] }));

const MASKED = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'];
const READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** WithDefaultUnixDevices: null, zero, full, random, urandom, tty, console, ptmx, pts. */
const DEVICES = [
  { allow: false, access: 'rwm' },
  ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2], [136, -1], [10, 200]].map(([major, minor]) => ({
    allow: true,
    type: 'c',
    major,
    ...(minor! >= 0 ? { minor } : {}),
    access: 'rwm',
  })),
];

export interface SpecOptions {
  /** Container id (the cgroup is /<namespace>/<id>). */
  id: string;
  namespace: string;
  config: ImageConfig['config'];
  /** Replaces the image's entrypoint and command when given (ctr run's args). */
  args?: string[];
  /** The host's network namespace (`host`), or the path of one set up for the container. */
  network: 'host' | { netns: string };
  /** The image user, resolved in the rootfs (image-user.ts). */
  user: ProcessUser;
}

/** The command: `args`, else the image's entrypoint and command (WithImageConfigArgs). */
export function processArgs(config: SpecOptions['config'], args: string[] | undefined): string[] {
  const cfg = config ?? {};
  const out = args && args.length > 0 ? args : [...(cfg.Entrypoint ?? []), ...(cfg.Cmd ?? [])];
  if (out.length === 0) throw new OverlaybdError('EINVAL', 'no command: give one after NEW_IMAGE (the image has no Entrypoint or Cmd)');
  return out;
}

export function runtimeSpec(o: SpecOptions): Record<string, unknown> {
  const cfg = o.config ?? {};
  const env = cfg.Env && cfg.Env.length > 0 ? [...cfg.Env] : [DEFAULT_PATH];
  const args = processArgs(cfg, o.args);
  const host = o.network === 'host';
  const namespaces: { type: string; path?: string }[] = ['pid', 'ipc', 'uts', 'mount'].map((type) => ({ type }));
  if (o.network !== 'host') namespaces.push({ type: 'network', path: o.network.netns });
  return {
    ociVersion: '1.0.2-dev',
    process: {
      user: o.user,
      args,
      env,
      cwd: cfg.WorkingDir || '/',
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs' },
    hostname: host ? undefined : o.id.slice(0, 63),
    mounts: [...MOUNTS, ...(host ? HOST_NET_MOUNTS : [])],
    linux: {
      resources: { devices: DEVICES },
      cgroupsPath: `/${o.namespace}/${o.id}`,
      namespaces,
      maskedPaths: MASKED,
      readonlyPaths: READONLY,
    },
  };
}

/** The spec as containerd's Container.spec field holds it. */
export function specAny(spec: Record<string, unknown>): { typeUrl: string; value: Buffer } {
  return { typeUrl: SPEC_TYPE_URL, value: Buffer.from(JSON.stringify(spec)) };
}
