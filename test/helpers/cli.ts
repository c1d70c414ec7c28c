/**
 * Runs this package's command-line tools (lib/cli/<name>.ts) the way a user
 * does, in a child process, for the tests that check exit codes, output and
 * signal handling.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './vectors.js';

/** node arguments that run the tool `name` from source. */
export function toolArgs(name: string): string[] {
  return ['--import', 'tsx', path.join(ROOT, `lib/cli/${name}.ts`)];
}

/** Runs a tool to its end; `input` goes to its stdin. */
export function runTool(name: string, args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...toolArgs(name), ...args], { cwd: ROOT, input, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts a tool, collecting its stderr; stdin is a pipe when asked. */
export function spawnTool(name: string, args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): { child: ChildProcess; stderr: string } {
  const child = spawn(process.execPath, [...toolArgs(name), ...args], { cwd: ROOT, stdio: [stdin, 'ignore', 'pipe'] });
  const out = { child, stderr: '' };
  child.stderr!.on('data', (b: Buffer) => (out.stderr += b.toString()));
  // The tool may exit (or be killed) before it reads all we write to it.
  child.stdin?.on('error', () => {});
  return out;
}

/** Polls `cond` every 50 ms; throws naming `what` after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
