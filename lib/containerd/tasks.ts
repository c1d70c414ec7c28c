/**
 * A container and its task through containerd's containers and tasks
 * services, as the Go client's NewContainer + NewTask do: the container
 * record (spec, runtime, snapshotter and snapshot key), the task created on
 * the snapshot's mounts with fifo stdio, Wait asked before Start so no exit
 * is missed, SIGTERM at the deadline and SIGKILL a grace period later.
 */
import * as grpc from '@grpc/grpc-js';
import type { Writable } from 'node:stream';
import { isGrpcStatus, type ContainerdConnection } from './connection.js';
import { openTaskIo } from './fifo-io.js';
import { specAny } from './oci-spec.js';
import type { Mount } from './snapshots.js';

export const DEFAULT_RUNTIME = 'io.containerd.runc.v2';

export interface ContainerRecord {
  id: string;
  image: string;
  snapshotter: string;
  snapshotKey: string;
  runtime: string;
  spec: Record<string, unknown>;
  labels?: Record<string, string>;
}

export async function createContainer(conn: ContainerdConnection, c: ContainerRecord): Promise<void> {
  const container = {
    id: c.id,
    labels: c.labels ?? {},
    image: c.image,
    runtime: { name: c.runtime },
    spec: specAny(c.spec),
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
  };
  await conn.call('containers', 'Create', { container }, c.id);
}

/** Deletes the container record; one already gone is fine. */
export async function deleteContainer(conn: ContainerdConnection, id: string): Promise<void> {
  try {
    await conn.call('containers', 'Delete', { id }, id);
  } catch (e) {
    if (!isGrpcStatus(e, grpc.status.NOT_FOUND)) throw e;
  }
}

/** Kills (SIGKILL) and deletes the task if there is one; for cleanup after a failure. */
export async function removeTask(conn: ContainerdConnection, id: string): Promise<void> {
  try {
    await conn.call('tasks', 'Kill', { containerId: id, signal: 9, all: true }, id);
  } catch (e) {
    if (isGrpcStatus(e, grpc.status.NOT_FOUND)) return;
  }
  for (let i = 0; i < 50; i++) {
    try {
      await conn.call('tasks', 'Delete', { containerId: id }, id);
      return;
    } catch (e) {
      if (isGrpcStatus(e, grpc.status.NOT_FOUND)) return;
      // FailedPrecondition: not stopped yet.
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface TaskRunOptions {
  id: string;
  mounts: Mount[];
  stdout: Writable;
  stderr: Writable;
  /** SIGTERM after this long, SIGKILL the same time later (record-trace's --time). */
  timeoutMs: number;
  /** Aborting it sends SIGTERM at once (a user's Ctrl-C ends the recording early). */
  stop?: AbortSignal;
  /** Where the fifos go (default the OS temp dir). */
  fifoDir?: string;
  say?: (line: string) => void;
}

export interface TaskResult {
  exitStatus: number;
  /** The deadline ended the task (SIGTERM, maybe SIGKILL). */
  timedOut: boolean;
}

/** Creates, starts, waits for and deletes the task of container `id`. */
export async function runTask(conn: ContainerdConnection, o: TaskRunOptions): Promise<TaskResult> {
  const say = o.say ?? (() => {});
  const io = openTaskIo(o.id, o.stdout, o.stderr, o.fifoDir);
  let created = false;
  const timers: NodeJS.Timeout[] = [];
  let timedOut = false;
  const kill = (signal: number, why: string) => {
    say(why);
    conn.call('tasks', 'Kill', { containerId: o.id, signal, all: false }, o.id).catch((e: unknown) => say(`warning: ${(e as Error).message}`));
  };
  const onStop = () => kill(15, 'stopping the task (SIGTERM)');
  try {
    await conn.call('tasks', 'Create', { containerId: o.id, rootfs: o.mounts, stdin: '', stdout: io.stdout, stderr: io.stderr, terminal: false }, o.id);
    created = true;
    io.shimAttached();
    const exited = conn.call<{ exitStatus?: number }>('tasks', 'Wait', { containerId: o.id }, o.id);
    exited.catch(() => {});
    const started = await conn.call<{ pid?: number }>('tasks', 'Start', { containerId: o.id }, o.id);
    say(`task ${o.id} is running (pid ${started.pid ?? '?'})`);
    timers.push(
      setTimeout(() => {
        timedOut = true;
        kill(15, `time is up after ${o.timeoutMs / 1000} s: stopping the task (SIGTERM)`);
        timers.push(setTimeout(() => kill(9, 'the task is still running: SIGKILL'), o.timeoutMs));
      }, o.timeoutMs),
    );
    if (o.stop?.aborted) onStop();
    else o.stop?.addEventListener('abort', onStop, { once: true });
    const r = await exited;
    for (const t of timers) clearTimeout(t);
    // The shim closes the fifos once it copied the last output.
    await Promise.race([io.drained(), new Promise((res) => setTimeout(res, 5000))]);
    await conn.call('tasks', 'Delete', { containerId: o.id }, o.id);
    created = false;
    return { exitStatus: r.exitStatus ?? 0, timedOut };
  } finally {
    for (const t of timers) clearTimeout(t);
    o.stop?.removeEventListener('abort', onStop);
    if (created) await removeTask(conn, o.id).catch(() => {});
    io.close();
  }
}
