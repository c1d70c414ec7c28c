/**
 * containerd's generic snapshotter test suite (snapshots/testsuite, 1.6.20)
 * against overlaybd-snapshotter over the snapshots gRPC API, each case with
 * its own snapshotter process and root. The same harness first runs against
 * containerd's own overlayfs snapshotter, so a failure below is the
 * snapshotter's, not the harness's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REF_SNAPSHOTTER, ensureSuiteBuilt, runSuite, shellQuote, suiteCases, type CaseResult, type SuiteRun } from './containerd-suite/go-suite.js';
import { ROOT } from './helpers/vectors.js';

const ENTRY = path.join(ROOT, 'lib/cli/overlaybd-snapshotter.ts');
const CASES = suiteCases();
/** Cases upstream skips itself (checkRename: "still fails on some kernels with overlay"). */
const UPSTREAM_SKIPS = new Set(['Rename']);
const SUITE_TIMEOUT = 900_000;

/** The suite's per-case temp dirs (os.MkdirTemp("", "snapshot-suite-obd-")). */
function suiteTempDirs(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('snapshot-suite-obd-'));
}
function mountsUnderSuiteDirs(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(path.join(os.tmpdir(), 'snapshot-suite-obd-')));
}

function describeCase(name: string, c: CaseResult | undefined, run: SuiteRun): string {
  if (!c) return `${name}: no result (suite exit ${run.code}); unattributed output:\n${run.other.slice(-80).join('\n')}`;
  return `${name}: ${c.status} after ${c.seconds}s; output:\n${c.output.slice(-150).join('\n')}`;
}

function expectCase(name: string, run: SuiteRun, skip: (note?: string) => void): void {
  const c = run.cases.get(name);
  if (c?.status === 'SKIP' && UPSTREAM_SKIPS.has(name)) {
    // Upstream's own t.Skip line, without the snapshotter's forwarded logs.
    const reason = c.output.filter((l) => !l.includes('log_hook.go')).join(' ').trim();
    return skip(`skipped by upstream: ${reason}`);
  }
  expect(c?.status, describeCase(name, c, run)).toBe('PASS');
}

describe('containerd snapshotter suite harness, against containerd overlayfs (reference)', () => {
  let run: SuiteRun;
  let tempBefore: string[];
  beforeAll(async () => {
    const build = ensureSuiteBuilt();
    console.log(`containerd suite: ${build.built ? 'built' : 'cached build'} in ${build.ms} ms`);
    tempBefore = suiteTempDirs();
    run = await runSuite({ command: shellQuote(REF_SNAPSHOTTER) });
    console.log(`containerd suite against the reference: ${run.ms} ms`);
  }, SUITE_TIMEOUT);

  it('finds every upstream case in the run', () => {
    expect(CASES.length).toBeGreaterThan(20);
    expect([...run.cases.keys()].sort(), `suite exit ${run.code}:\n${run.other.join('\n')}`).toEqual([...CASES].sort());
  });

  it('passes every case but those upstream skips', () => {
    const bad = CASES.filter((n) => run.cases.get(n)?.status !== (UPSTREAM_SKIPS.has(n) ? 'SKIP' : 'PASS'));
    expect(bad, bad.map((n) => describeCase(n, run.cases.get(n), run)).join('\n\n')).toEqual([]);
    expect(run.code).toBe(0);
  });

  it('leaves no mounts or temp dirs', () => {
    expect(mountsUnderSuiteDirs()).toEqual([]);
    expect(suiteTempDirs().filter((d) => !tempBefore.includes(d))).toEqual([]);
  });
});

const haveSnapshotter = fs.existsSync(ENTRY);
const missing = `skipped, ${path.relative(ROOT, ENTRY)} does not exist yet`;

/** Runs `cases` against overlaybd-snapshotter with `config`, one vitest case per suite case. */
function describeAgainstSnapshotter(title: string, config: Record<string, unknown>, cases: string[]): void {
  describe.skipIf(!haveSnapshotter)(haveSnapshotter ? title : `${title}: ${missing}`, () => {
    let run: SuiteRun;
    let tempBefore: string[];
    beforeAll(async () => {
      ensureSuiteBuilt();
      tempBefore = suiteTempDirs();
      const command = [process.execPath, '--import', 'tsx', ENTRY].map(shellQuote).join(' ');
      run = await runSuite({ command, config, cases: cases.length === CASES.length ? undefined : cases });
      console.log(`${title}: ${run.ms} ms, exit ${run.code}`);
    }, SUITE_TIMEOUT);

    it.for(cases)('%s', (name, { skip }) => expectCase(name, run, skip));

    it('leaves no mounts or temp dirs', () => {
      expect(mountsUnderSuiteDirs()).toEqual([]);
      expect(suiteTempDirs().filter((d) => !tempBefore.includes(d))).toEqual([]);
    });
  });
}

describeAgainstSnapshotter('containerd snapshotter suite against overlaybd-snapshotter', {}, CASES);
// Upstream runs the suite on its overlayfs snapshotter with AsynchronousRemove
// too. Here only the cases that call Remove themselves (and one going
// through checkSnapshots' view removal) run again, to keep the CI cost down.
const ASYNC_REMOVE_CASES = ['Basic', 'Remove', 'RemoveIntermediateSnapshot', 'ViewReadonly', 'CloseTwice', 'DeletedFilesInChildSnapshot'];
describeAgainstSnapshotter(
  'containerd snapshotter suite against overlaybd-snapshotter, asyncRemove',
  { asyncRemove: true },
  CASES.filter((n) => ASYNC_REMOVE_CASES.includes(n)),
);
