/**
 * Native objects across environment teardown, in child processes (an abort
 * there must not take the test runner down): workers terminated or exiting
 * with reads pending, process.exit with reads pending, garbage collection
 * with I/O in flight, open/close cycles, the addon in several workers.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/vectors.js';

const CHILD = path.join(ROOT, 'test/helpers/lifetime-child.ts');

/** Runs one scenario; it must exit 0 without a signal and print one JSON line. */
function scenario(name: string, ...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, name, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, UV_THREADPOOL_SIZE: '4' },
  });
  const what = `${name}: status ${r.status} signal ${r.signal}\n${r.stderr}`;
  expect(r.signal, what).toBeNull();
  expect(r.status, what).toBe(0);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, unknown>;
}

describe('environment teardown with native calls pending', () => {
  it('a worker terminated while reads run does not abort the process', () => {
    expect(scenario('worker-terminate')).toEqual({ ok: true });
  });

  it('a worker calling process.exit while reads run does not abort the process', () => {
    expect(scenario('worker-exit')).toEqual({ ok: true, code: 0 });
  });

  it('process.exit while reads run exits normally', () => {
    expect(scenario('main-exit')).toEqual({ ok: true });
  });
});

describe('lifetimes', () => {
  it('dropping the last reference while reads run: they resolve, the objects are collected', () => {
    const r = scenario('gc');
    expect(r).toMatchObject({ ok: true, reads: 2000, allSized: true, sameData: true });
    expect(r.collected as number).toBeGreaterThan(0);
  });

  it('open/close cycles leave fds and RSS flat', () => {
    const r = scenario('cycles', '10000') as { fd0: number; fd1: number; rss0: number; rss1: number };
    expect(r.fd1).toBeLessThanOrEqual(r.fd0);
    expect(r.rss1 - r.rss0, `RSS ${r.rss0.toFixed(1)} -> ${r.rss1.toFixed(1)} MiB`).toBeLessThan(24);
  });

  it('the addon in several workers at once; workers exiting with objects open release them; apply progress is released', () => {
    const r = scenario('workers') as { codes: number[]; same: boolean; fd0: number; fd1: number; threads0: number; threads1: number };
    expect(r.codes).toEqual([0, 0, 0, 0]);
    expect(r.same).toBe(true);
    expect(r.fd1).toBeLessThanOrEqual(r.fd0);
    expect(r.threads1).toBeLessThanOrEqual(r.threads0);
  });
});
