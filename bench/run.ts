/**
 * npm run bench: runs every bench/<name>.ts that exports
 * `run(): Promise<Record<string, number | string>>` (or only those named on
 * the command line) and prints each figure. Ratios compare against a
 * baseline measured in the same run, never against stored numbers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type Bench = { run: () => Promise<Record<string, number | string>> };

const dir = path.dirname(fileURLToPath(import.meta.url));
// Names select benches; --options are for the benches themselves (bench/device.ts).
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const names = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.replace(/\.ts$/, ''))
  .filter((n) => only.length === 0 || only.includes(n))
  .sort();

const results: Record<string, Record<string, number | string>> = {};
for (const name of names) {
  const mod = (await import(pathToFileURL(path.join(dir, `${name}.ts`)).href)) as Partial<Bench>;
  if (typeof mod.run !== 'function') continue;
  process.stdout.write(`\n== ${name}\n`);
  const t0 = Date.now();
  try {
    const r = await mod.run();
    results[name] = r;
    for (const [k, v] of Object.entries(r)) {
      process.stdout.write(`  ${k.padEnd(36)} ${typeof v === 'number' ? formatNumber(v) : v}\n`);
    }
  } catch (e) {
    process.stdout.write(`  FAILED: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
  process.stdout.write(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
}
if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(results, null, 1));

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v >= 100 ? v.toFixed(0) : v.toFixed(3);
}
