/**
 * Builds and runs containerd's generic snapshotter test suite (Go,
 * snapshots/testsuite of containerd 1.6.20, from Debian's
 * /usr/share/gocode) against an out-of-process snapshotter, and splits the
 * `go test -v` output into one result per suite case.
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/vectors.js';

const HERE = path.join(ROOT, 'test/containerd-suite');
export const SUITE_OUT = path.join(ROOT, 'build/containerd-suite');
export const SUITE_BIN = path.join(SUITE_OUT, 'suite.test');
/** containerd's overlayfs snapshotter behind its gRPC adapter: the harness's reference. */
export const REF_SNAPSHOTTER = path.join(SUITE_OUT, 'ref-snapshotter');
/** Upstream's suite source: its t.Run calls name the cases. */
export const UPSTREAM_SUITE = '/usr/share/gocode/src/github.com/containerd/containerd/snapshots/testsuite/testsuite.go';
/** The Go test function in suite/suite_test.go. */
const TOP = 'TestSnapshotter';

export type CaseStatus = 'PASS' | 'FAIL' | 'SKIP';
export interface CaseResult {
  status: CaseStatus;
  /** Seconds, as go test reports them. */
  seconds: number;
  /** Lines logged while this case ran (test logs and the snapshotter's output). */
  output: string[];
}
export interface SuiteRun {
  code: number | null;
  cases: Map<string, CaseResult>;
  /** Output not attributed to a case (build-up, panics, the final summary). */
  other: string[];
  ms: number;
}

/** Case names, in order, as upstream's SnapshotterSuite runs them. */
export function suiteCases(): string[] {
  const src = fs.readFileSync(UPSTREAM_SUITE, 'utf8');
  return [...src.matchAll(/t\.Run\("([^"]+)", makeTest\(/g)].map((m) => m[1]!);
}

/** Hash of everything the binaries are built from, so edits trigger a rebuild. */
function sourceHash(): string {
  const h = crypto.createHash('sha256');
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.go$|\.sh$/.test(e.name)) h.update(path.relative(HERE, p)).update(fs.readFileSync(p));
    }
  };
  walk(HERE);
  h.update(spawnSync('go', ['version'], { encoding: 'utf8' }).stdout ?? 'no go');
  return h.digest('hex');
}

/** Builds suite.test and ref-snapshotter unless the cached ones match the sources. */
export function ensureSuiteBuilt(): { built: boolean; ms: number } {
  const t0 = Date.now();
  const stampPath = path.join(SUITE_OUT, 'sources.sha256');
  const hash = sourceHash();
  const fresh =
    fs.existsSync(SUITE_BIN) && fs.existsSync(REF_SNAPSHOTTER) && fs.existsSync(stampPath) && fs.readFileSync(stampPath, 'utf8') === hash;
  if (fresh) return { built: false, ms: Date.now() - t0 };
  const r = spawnSync('nice', ['bash', path.join(HERE, 'build.sh'), SUITE_OUT], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building the containerd suite failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  fs.writeFileSync(stampPath, hash);
  return { built: true, ms: Date.now() - t0 };
}

/** Quotes one word for the /bin/sh command line the Go harness runs. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface RunOptions {
  /** Shell command line of the snapshotter; the config.json path is appended. */
  command: string;
  /** Extra config.json keys besides root and address. */
  config?: Record<string, unknown>;
  /** Cases run at once, each with its own snapshotter process. */
  parallel?: number;
  /** Seconds to wait for each snapshotter's socket. */
  startTimeout?: number;
  /** Only these cases (default: all). */
  cases?: string[];
}

/** Escapes a case name for go test's -run regexp. */
function goRegexpQuote(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

/** Runs the whole suite once; resolves with each case's result. */
export function runSuite(opts: RunOptions): Promise<SuiteRun> {
  const t0 = Date.now();
  const env = {
    ...process.env,
    OBD_SNAPSHOTTER_CMD: opts.command,
    OBD_SNAPSHOTTER_CONFIG: JSON.stringify(opts.config ?? {}),
    OBD_SNAPSHOTTER_START_TIMEOUT: String(opts.startTimeout ?? 60),
  };
  const only = opts.cases ? `/^(${opts.cases.map(goRegexpQuote).join('|')})$` : '';
  const args = ['-test.root', '-test.v', `-test.parallel=${opts.parallel ?? 2}`, '-test.timeout=15m', `-test.run=^${TOP}$${only}`];
  const child = spawn('nice', [SUITE_BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr.on('data', (b: Buffer) => (text += b.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, ...parseGoTestV(text), ms: Date.now() - t0 }));
  });
}

/**
 * Splits `go test -v` output of TOP's subtests into per-case results. With
 * parallel subtests, go prints `=== CONT name` whenever another test starts
 * logging, so every log line belongs to the last named test.
 */
export function parseGoTestV(text: string): { cases: Map<string, CaseResult>; other: string[] } {
  const cases = new Map<string, CaseResult>();
  const logs = new Map<string, string[]>();
  const other: string[] = [];
  const prefix = `${TOP}/`;
  let current: string | undefined;
  for (const line of text.split('\n')) {
    const header = /^=== (?:RUN|CONT|PAUSE|NAME)\s+(\S+)/.exec(line);
    if (header) {
      current = header[1]!.startsWith(prefix) ? header[1]!.slice(prefix.length) : undefined;
      continue;
    }
    const result = /^\s*--- (PASS|FAIL|SKIP): (\S+) \(([\d.]+)s\)/.exec(line);
    if (result) {
      if (result[2]!.startsWith(prefix)) {
        const name = result[2]!.slice(prefix.length);
        // A case run more than once (-test.count) keeps its worst result.
        const status = cases.get(name)?.status === 'FAIL' ? 'FAIL' : (result[1] as CaseStatus);
        cases.set(name, { status, seconds: Number(result[3]), output: logs.get(name) ?? [] });
      }
      current = undefined;
      continue;
    }
    if (current === undefined) {
      if (line.trim()) other.push(line);
      continue;
    }
    if (!logs.has(current)) logs.set(current, []);
    logs.get(current)!.push(line);
  }
  return { cases, other };
}
