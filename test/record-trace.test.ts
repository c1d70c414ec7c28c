/**
 * `overlaybd record-trace` against the real thing: containerd 1.6 + runc,
 * overlaybd-snapshotter on our device service, docker-registry. The
 * converted bookworm image is rpulled, a command runs in a container of it
 * while the image service records the blocks read, and the new image (old
 * layers + acceleration layer) is pushed. Then, each on a fresh stack (an
 * empty blob cache), rpull + ctr run of the untraced and of the traced image
 * run the same command: the traced one prefetches the recorded ranges and
 * makes fewer blob GETs at the registry in its run phase. Bad input fails
 * with a clear error and leaves no container, task or snapshot behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/vectors.js';
import { toolArgs } from './helpers/cli.js';
import { startObdStack, type ObdStack } from './helpers/obd-stack.js';
import { registryClient, remoteBookworm, type RemoteBookworm } from './helpers/remote-image.js';
import { blobBytesSince, logMark } from './helpers/registry-bytes.js';
import { busyboxImageTar } from './helpers/snapshotter.js';
import { sha256Digest } from '../lib/registry/index.js';
import { isMountPoint } from '../lib/snapshotter/block-device.js';

/** What the container does: the release file, then every program in /usr/bin (about 21 MB) read in full. */
const SCRIPT = 'cat /etc/debian_version; cat /usr/bin/* > /dev/null 2>&1; echo done-reading';
const ACCEL = 'containerd.io/snapshot/overlaybd/acceleration-layer';

interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `overlaybd record-trace ...args`, stdout and stderr collected, without blocking this process. */
function recordTrace(args: string[]): Promise<ToolRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...toolArgs('overlaybd'), 'record-trace', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (b: Buffer) => (out.stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out.stderr += b.toString()));
    child.once('close', (code) => resolve({ code, ...out }));
  });
}

function rpull(stack: ObdStack, ref: string): Promise<ToolRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...toolArgs('overlaybd'), 'rpull', '--plain-http', '--address', stack.cd!.socket, '--snapshotter', 'obd', ref], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (b: Buffer) => (out.stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out.stderr += b.toString()));
    child.once('close', (code) => resolve({ code, ...out }));
  });
}

/** Containers, tasks and active snapshots containerd and the snapshotter still hold. */
async function leftovers(stack: ObdStack): Promise<{ containers: string; tasks: string; active: string[] }> {
  const containers = (await stack.cd!.ctr(['containers', 'ls', '-q'])).stdout.trim();
  const tasks = (await stack.cd!.ctr(['tasks', 'ls', '-q'])).stdout.trim();
  const active = (await stack.snap.list(['kind==active'])).map((s) => s.name);
  return { containers, tasks, active };
}

const settle = () => new Promise((r) => setTimeout(r, 200));

describe('overlaybd record-trace', () => {
  let image: RemoteBookworm;
  let stack: ObdStack | undefined;
  let oldRef: string;
  let newRef: string;
  let work: string;

  const startStack = (name: string) =>
    startObdStack({
      name,
      snapshotter: { autoRemoveDev: true, mirrorRegistry: [{ host: image.registry.host, insecure: true }] },
      containerd: { plainHttpRegistries: [image.registry.host] },
    });

  let bridgeBefore = false;
  let forwardBefore = '';
  let netnsMountBefore = false;

  beforeAll(async () => {
    bridgeBefore = fs.existsSync('/sys/class/net/r-trace-br0');
    forwardBefore = fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
    netnsMountBefore = isMountPoint('/run/netns');
    image = await remoteBookworm();
    oldRef = `${image.registry.host}/${image.repo}:${image.tag}`;
    newRef = `${image.registry.host}/${image.repo}:traced`;
    stack = await startStack('rtrace');
    work = path.join(stack.dir, 'work');
    fs.mkdirSync(work);
  }, 600_000);

  afterAll(async () => {
    await stack?.stop();
    await image?.close();
    // What the CNI bridge leaves on the host, as upstream's: the bridge and IP forwarding.
    if (!bridgeBefore) {
      spawnSync('ip', ['link', 'del', 'r-trace-br0']);
      fs.rmSync('/var/lib/cni/networks/r-trace-br0', { recursive: true, force: true });
    }
    // `ip netns add` makes /run/netns a mount of its own, and leaves it.
    if (!netnsMountBefore && fs.readdirSync('/run/netns').length === 0) spawnSync('umount', ['/run/netns']);
    fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', forwardBefore);
  });

  it('records a trace of a command and pushes the image with the acceleration layer', async () => {
    const s = stack!;
    const pulled = await rpull(s, oldRef);
    expect(pulled.stderr).toContain('done');
    const traceDir = path.join(work, 'traces');
    const r = await recordTrace(['--address', s.cd!.socket, '--snapshotter', 'obd', '--plain-http', '--working-dir', traceDir, '--time', '120', oldRef, newRef, '/bin/sh', '-c', SCRIPT]);
    expect(r.stderr).toMatch(/New image .* is created/);
    expect(r.code, r.stderr).toBe(0);
    // The container's output came through the fifos.
    expect(r.stdout).toMatch(/^12\.\d+\ndone-reading\n$/);
    expect(r.stderr).toMatch(/task exited with status 0/);
    console.log(r.stderr.split('\n').find((l) => l.startsWith('trace: ')));

    // The image record in containerd, and the pushed manifest: old layers + the trace layer.
    const client = registryClient(image.registry);
    try {
      const { bytes } = await client.getManifest(newRef);
      const m = JSON.parse(bytes.toString('utf8')) as { mediaType: string; config: { digest: string; size: number }; layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[] };
      expect(m.layers).toHaveLength(image.lowers.length + 1);
      expect(m.layers.slice(0, -1).map((l) => l.digest)).toEqual(image.lowers.map((l) => l.digest));
      const top = m.layers.at(-1)!;
      expect(top.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
      expect(top.annotations).toMatchObject({
        [ACCEL]: 'yes',
        'containerd.io/snapshot/overlaybd/blob-digest': top.digest,
        'containerd.io/snapshot/overlaybd/blob-size': String(top.size),
        'containerd.io/snapshot/overlaybd/version': '0.1.0',
      });
      const loc = { registry: image.registry.host, repository: image.repo };
      const config = JSON.parse((await client.fetchBlobBytes(loc, m.config)).toString('utf8')) as { rootfs: { diff_ids: string[] }; history: { created_by?: string }[] };
      expect(config.rootfs.diff_ids).toHaveLength(image.lowers.length + 1);
      expect(config.rootfs.diff_ids.at(-1)).toBe(top.digest);
      expect(config.history[0]!.created_by).toBe('Acceleration Layer');
      // The layer is a tar of one file `trace`, holding a recorded (non-empty) trace.
      const tar = await client.fetchBlobBytes(loc, top);
      expect(tar.subarray(0, 6).toString()).toBe('trace\0');
      expect(parseInt(tar.subarray(124, 135).toString(), 8)).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
    expect((await s.cd!.ctr(['images', 'ls', '-q'])).stdout).toContain(newRef);

    // Nothing of the recording is left: container, task, rootfs snapshot, trace files.
    await settle();
    expect(await leftovers(s)).toEqual({ containers: '', tasks: '', active: [] });
    expect(fs.readdirSync(traceDir)).toEqual([]);
  }, 600_000);

  it('fails clearly on bad input and leaves nothing behind', async () => {
    const s = stack!;
    const base = ['--address', s.cd!.socket, '--snapshotter', 'obd', '--no-push', '--working-dir', path.join(work, 'bad')];

    const missing = await recordTrace([...base, `${image.registry.host}/nothing:here`, `${image.registry.host}/nothing:new`, '/bin/true']);
    expect(missing.code, missing.stderr).toBe(1);
    expect(missing.stderr).toMatch(/ENOENT: image .*nothing:here not found in containerd .*overlaybd rpull/);

    const exists = await recordTrace([...base, oldRef, newRef, '/bin/true']);
    expect(exists.code, exists.stderr).toBe(1);
    expect(exists.stderr).toMatch(/EEXIST: image .*:traced exists already/);

    const accel = await recordTrace([...base, newRef, `${newRef}-again`, '/bin/true']);
    expect(accel.code, accel.stderr).toBe(1);
    expect(accel.stderr).toMatch(/FAILED_PRECONDITION: .* has an acceleration layer already/);

    const tar = busyboxImageTar(fs.mkdtempSync(path.join(work, 'bb-')));
    await s.cd!.ctr(['image', 'import', '--base-name', 'docker.io/library/plain-busybox', tar]);
    const plain = await recordTrace([...base, 'docker.io/library/plain-busybox:latest', 'docker.io/library/plain-busybox:traced', '/bin/true']);
    expect(plain.code, plain.stderr).toBe(1);
    expect(plain.stderr).toMatch(/FAILED_PRECONDITION: .*plain-busybox:latest: not an overlaybd image/);

    const noList = await recordTrace([...base, '--priority_list', path.join(work, 'no-such-list'), oldRef, `${oldRef}-x`]);
    expect(noList.code, noList.stderr).toBe(1);
    expect(noList.stderr).toMatch(/ENOENT: --priority_list .*no-such-list: ENOENT/);

    const zero = await recordTrace([...base, '--time', '0', oldRef, `${oldRef}-x`]);
    expect(zero.code, zero.stderr).toBe(2);
    expect(zero.stderr).toMatch(/--time can't be 0/);

    const failing = await recordTrace([...base, '--time', '60', oldRef, `${image.registry.host}/${image.repo}:failed`, '/bin/sh', '-c', 'echo about to fail; exit 3']);
    expect(failing.stdout).toBe('about to fail\n');
    expect(failing.code, failing.stderr).toBe(1);
    expect(failing.stderr).toMatch(/EINVAL: the command .* exited with status 3/);
    expect((await s.cd!.ctr(['images', 'ls', '-q'])).stdout).not.toContain(':failed');

    await settle();
    expect(await leftovers(s)).toEqual({ containers: '', tasks: '', active: [] });
    expect(fs.readdirSync(path.join(work, 'bad'))).toEqual([]);
  }, 600_000);

  it('stops a command at --time (SIGTERM, then SIGKILL) and takes a priority list instead of a trace', async () => {
    const s = stack!;
    const base = ['--address', s.cd!.socket, '--snapshotter', 'obd', '--no-push', '--working-dir', path.join(work, 'more')];
    // sh as pid 1 ignores SIGTERM: the second period ends it with SIGKILL; the trace is still made.
    const timed = await recordTrace([...base, '--time', '2', oldRef, `${image.registry.host}/${image.repo}:timed`, '/bin/sh', '-c', 'cat /etc/debian_version; sleep 60']);
    expect(timed.stderr).toMatch(/time is up after 2 s: stopping the task \(SIGTERM\)/);
    expect(timed.stderr).toMatch(/SIGKILL/);
    expect(timed.stderr).toMatch(/task ended by the time limit \(exit status 137\)/);
    expect(timed.code, timed.stderr).toBe(0);

    const list = path.join(work, 'priority.list');
    fs.writeFileSync(list, '/usr/bin/\n/etc/debian_version\n');
    const listed = await recordTrace([...base, '--priority_list', list, oldRef, `${image.registry.host}/${image.repo}:listed`]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stderr).toMatch(/New image .*:listed is created/);
    const images = (await s.cd!.ctr(['images', 'ls', '-q'])).stdout;
    expect(images).toContain(':timed');
    expect(images).toContain(':listed');

    await settle();
    expect(await leftovers(s)).toEqual({ containers: '', tasks: '', active: [] });
    expect(fs.readdirSync(path.join(work, 'more'))).toEqual([]);
  }, 600_000);

  it('runs the command on the CNI bridge r-trace-br0 unless network isolation is off, and removes its namespace', async () => {
    const s = stack!;
    const base = ['--address', s.cd!.socket, '--snapshotter', 'obd', '--no-push', '--working-dir', path.join(work, 'net')];
    const NET = 'cat /proc/net/dev /proc/net/fib_trie';
    const isolated = await recordTrace([...base, oldRef, `${image.registry.host}/${image.repo}:net`, '/bin/sh', '-c', NET]);
    expect(isolated.code, isolated.stderr).toBe(0);
    expect(isolated.stdout).toMatch(/^\s*eth0:/m);
    expect(isolated.stdout).toContain('10.99.');
    // Nothing of the attachment is left: the namespace, or an address held in host-local's store.
    expect(spawnSync('ip', ['netns', 'list']).stdout.toString()).not.toContain('obd-trace-');
    const held = fs.readdirSync('/var/lib/cni/networks/r-trace-br0').filter((f) => !f.startsWith('last_reserved_ip') && f !== 'lock');
    expect(held).toEqual([]);

    const onHost = await recordTrace([...base, '--disable-network-isolation', oldRef, `${image.registry.host}/${image.repo}:host-net`, '/bin/sh', '-c', NET]);
    expect(onHost.code, onHost.stderr).toBe(0);
    // The host's own interfaces, each of them.
    const ifaces = (text: string) => [...text.matchAll(/^\s*([^\s:]+):/gm)].map((m) => m[1]).sort();
    expect(ifaces(onHost.stdout.slice(0, onHost.stdout.indexOf('Main:')))).toEqual(ifaces(fs.readFileSync('/proc/net/dev', 'utf8')));

    const noPlugins = await recordTrace([...base, '--cni-plugin-dir', path.join(work, 'no-plugins'), oldRef, `${image.registry.host}/${image.repo}:no-cni`, '/bin/true']);
    expect(noPlugins.code, noPlugins.stderr).toBe(1);
    expect(noPlugins.stderr).toMatch(/CNI plugin loopback not found in .*no-plugins/);
    expect(spawnSync('ip', ['netns', 'list']).stdout.toString()).not.toContain('obd-trace-');
    await settle();
    expect(await leftovers(s)).toEqual({ containers: '', tasks: '', active: [] });
  }, 600_000);

  it('runs the command as the image user, as ctr run does', async () => {
    const s = stack!;
    // The bookworm image whose config names its user: resolved in the image's own /etc/passwd.
    const pushWithUser = async (user: string, tag: string): Promise<string> => {
      const client = registryClient(image.registry);
      try {
        const loc = { registry: image.registry.host, repository: image.repo };
        const { descriptor, bytes } = await client.getManifest(oldRef);
        const m = JSON.parse(bytes.toString('utf8')) as { config: { mediaType: string; digest: string; size: number } };
        const cfg = JSON.parse((await client.fetchBlobBytes(loc, m.config)).toString('utf8')) as { config?: Record<string, unknown> };
        cfg.config = { ...cfg.config, User: user };
        const cfgBytes = Buffer.from(JSON.stringify(cfg));
        m.config = { mediaType: m.config.mediaType, digest: sha256Digest(cfgBytes), size: cfgBytes.length };
        await client.pushBlob(loc, m.config, cfgBytes);
        await client.pushManifest(loc, Buffer.from(JSON.stringify(m)), descriptor.mediaType, tag);
        return `${image.registry.host}/${image.repo}:${tag}`;
      } finally {
        await client.close();
      }
    };
    const base = ['--address', s.cd!.socket, '--snapshotter', 'obd', '--no-push', '--working-dir', path.join(work, 'user')];
    const ID = 'id -u; id -g; id -G';

    const nobodyRef = await pushWithUser('nobody', 'user-nobody');
    expect((await rpull(s, nobodyRef)).code).toBe(0);
    const out = path.join(work, 'id-out');
    fs.mkdirSync(out, { mode: 0o777 });
    fs.chmodSync(out, 0o777); // the command writes as nobody
    await s.cd!.ctr(['run', '--rm', '--snapshotter', 'obd', '--mount', `type=bind,src=${out},dst=/out,options=rbind:rw`, nobodyRef, 'c-user', '/bin/sh', '-c', `(${ID}) > /out/v`], {
      timeoutMs: 300_000,
    });
    const byCtr = fs.readFileSync(path.join(out, 'v'), 'utf8');
    expect(byCtr).toBe('65534\n65534\n65534\n');
    const traced = await recordTrace([...base, nobodyRef, `${nobodyRef}-traced`, '/bin/sh', '-c', ID]);
    expect(traced.code, traced.stderr).toBe(0);
    expect(traced.stdout).toBe(byCtr);

    const missingRef = await pushWithUser('mallory', 'user-mallory');
    expect((await rpull(s, missingRef)).code).toBe(0);
    const missing = await recordTrace([...base, missingRef, `${missingRef}-traced`, '/bin/true']);
    expect(missing.code, missing.stderr).toBe(1);
    expect(missing.stderr).toMatch(/image user "mallory": no user mallory in the image's \/etc\/passwd/);

    await settle();
    expect(await leftovers(s)).toEqual({ containers: '', tasks: '', active: [] });
    expect(fs.readdirSync(path.join(work, 'user'))).toEqual([]);
    expect(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('obd-rootfs-'))).toEqual([]);
  }, 600_000);

  it('starts the traced image with fewer registry requests than the untraced one', async () => {
    await stack?.stop();
    stack = undefined;
    /** On a fresh stack (empty cache): rpull, then ctr run of SCRIPT; the blob GETs of the run phase. */
    const runFresh = async (ref: string, name: string): Promise<{ gets: number; bytes: number; out: string }> => {
      const s = await startStack(name);
      try {
        const pulled = await rpull(s, ref);
        expect(pulled.code, pulled.stderr).toBe(0);
        const out = path.join(s.dir, 'out');
        fs.mkdirSync(out);
        const mark = logMark(image.registry.logFile);
        await s.cd!.ctr(['run', '--rm', '--snapshotter', 'obd', '--mount', `type=bind,src=${out},dst=/out,options=rbind:rw`, ref, `c-${name}`, '/bin/sh', '-c', `(${SCRIPT}) > /out/v`], {
          timeoutMs: 300_000,
        });
        return { ...blobBytesSince(image.registry.logFile, mark), out: fs.readFileSync(path.join(out, 'v'), 'utf8') };
      } finally {
        await s.stop();
      }
    };
    const plain = await runFresh(oldRef, 'rtrace-plain');
    const traced = await runFresh(newRef, 'rtrace-traced');
    console.log(`run phase blob GETs: untraced ${plain.gets} (${plain.bytes} bytes), traced ${traced.gets} (${traced.bytes} bytes)`);
    for (const r of [plain, traced]) expect(r.out).toMatch(/^12\.\d+\ndone-reading\n$/);
    expect(traced.gets).toBeLessThan(plain.gets);
  }, 900_000);
});
