/**
 * Child process for test/lifetime-process.test.ts, one scenario per run:
 *   node [--expose-gc] --import tsx test/helpers/lifetime-child.ts <scenario>
 * It prints one JSON line with its measurements; the test checks that line
 * and that the process exited normally (no abort, no hang).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { openImage } from '../../lib/image.js';
import * as zfile from '../../lib/zfile.js';
import { applyLayer } from '../../lib/ext4/index.js';
import { vector } from './vectors.js';

const LOWER = vector('lsmt/A.commit');
const ZFILE = vector('zfile/A.lz4bs4.zfile');
const WORKER_ENTRY = new URL('./lifetime-worker.mjs', import.meta.url);

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const threadCount = () => fs.readdirSync('/proc/self/task').length;
const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
const report = (o: object) => console.log(JSON.stringify(o));

/** Starts this file as a worker running `role`. */
function startWorker(role: string, extra: object = {}): Worker {
  return new Worker(WORKER_ENTRY, { workerData: { module: import.meta.url, role, ...extra } });
}

function exited(w: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    w.on('error', reject);
    w.on('exit', resolve);
  });
}

/** Keeps `depth` reads in flight on an image forever; tells the parent once busy. */
async function busyReader(depth: number, exitWhenBusy: boolean): Promise<void> {
  const img = await openImage({ lowers: [LOWER] });
  const z = await zfile.open(ZFILE);
  const span = img.size - 4096;
  let i = 0;
  const one = (): Promise<unknown> => img.read((i++ * 4096) % span, 4096).catch(() => undefined);
  for (let k = 0; k < depth; k++) {
    void one();
    void z.read(0, 4096).catch(() => undefined);
  }
  if (exitWhenBusy) process.exit(0);
  parentPort!.postMessage('busy');
  for (;;) {
    await one();
    for (let k = 0; k < 50; k++) void one();
  }
}

const scenarios: Record<string, () => Promise<void>> = {
  // Defect 1: terminating a worker with native reads pending aborted the
  // process (every time: hundreds of reads complete during teardown).
  async 'worker-terminate'() {
    const w = startWorker('busy');
    await new Promise((r) => w.once('message', r));
    await w.terminate();
    report({ ok: true });
  },
  async 'worker-exit'() {
    report({ ok: true, code: await exited(startWorker('busy-exit')) });
  },
  async 'main-exit'() {
    const img = await openImage({ lowers: [LOWER] });
    for (let k = 0; k < 500; k++) void img.read((k * 4096) % (img.size - 65536), 65536);
    report({ ok: true });
    process.exit(0);
  },

  // The last reference dropped while reads run: they finish, the objects are collected.
  async gc() {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error('run with --expose-gc');
    const pending: Promise<Buffer>[] = [];
    let collected = 0;
    const registry = new FinalizationRegistry(() => collected++);
    for (let round = 0; round < 20; round++) {
      let img: Awaited<ReturnType<typeof openImage>> | undefined = await openImage({ lowers: [LOWER] });
      let z: zfile.ZFileReader | undefined = await zfile.open(ZFILE);
      registry.register(img, 'img');
      registry.register(z, 'z');
      for (let k = 0; k < 50; k++) pending.push(img.read(k * 4096, 4096), z.read(k * 512, 512));
      img = undefined;
      z = undefined;
      gc();
    }
    const got = await Promise.all(pending);
    for (let k = 0; k < 5; k++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    const img = await openImage({ lowers: [LOWER] });
    const again = await img.read(0, 4096);
    await img.close();
    report({ ok: true, reads: got.length, allSized: got.every((b) => b.length > 0), sameData: again.equals(got[0]!), collected });
  },

  // Open/close cycles: fds and RSS stay flat.
  async cycles() {
    // Every tenth cycle also reads, and opens and closes a ZFile reader.
    const cycle = async (k: number) => {
      const img = await openImage({ lowers: [LOWER] });
      if (k % 10 === 0) {
        await img.read(0, 4096);
        const z = await zfile.open(ZFILE);
        await z.read(0, 4096);
        await z.close();
      }
      await img.close();
    };
    for (let k = 0; k < 500; k++) await cycle(k);
    const fd0 = fdCount(), rss0 = rssMiB();
    const n = Number(process.argv[3] ?? 10_000);
    for (let k = 0; k < n; k++) await cycle(k);
    (globalThis as { gc?: () => void }).gc?.();
    report({ ok: true, cycles: n, fd0, fd1: fdCount(), rss0, rss1: rssMiB() });
  },

  // The addon in several workers at once; each exits with an image left open.
  async workers() {
    const img = await openImage({ lowers: [LOWER] });
    const expected = (await img.read(0, 65536)).toString('base64');
    await img.close();
    const warm = startWorker('read-and-leave', { leave: false });
    await exited(warm);
    const fd0 = fdCount(), threads0 = threadCount();
    const results: string[] = [];
    const ws = Array.from({ length: 3 }, () => startWorker('read-and-leave', { leave: true }));
    ws.forEach((w) => w.on('message', (m: string) => results.push(m)));
    // A progress function left unreleased would keep this one alive forever.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-life-apply-'));
    ws.push(startWorker('apply-with-progress', { dir: tmp }));
    const codes = await Promise.all(ws.map(exited));
    fs.rmSync(tmp, { recursive: true, force: true });
    // Thread teardown is asynchronous in the kernel's view: wait briefly.
    for (let k = 0; k < 50 && threadCount() > threads0; k++) await new Promise((r) => setTimeout(r, 20));
    report({ ok: true, codes, same: results.length === 3 && results.every((r) => r === expected), fd0, fd1: fdCount(), threads0, threads1: threadCount() });
  },
};

const roles: Record<string, () => Promise<void>> = {
  async 'apply-with-progress'() {
    const dir = (workerData as { dir: string }).dir;
    let reports = 0;
    const onProgress = () => reports++;
    const failed = await applyLayer({ raw: path.join(dir, 'missing.raw') }, vector('inputs/layer1.tar'), { onProgress }).catch((e: Error) => e);
    if (!(failed instanceof Error)) throw new Error('apply onto a missing raw file should fail');
    await applyLayer({ raw: path.join(dir, 'fs.raw') }, vector('inputs/layer1.tar'), { mkfs: true, vsizeGB: 1, onProgress });
    if (reports === 0) throw new Error('no progress reported');
  },
  busy: () => busyReader(400, false),
  'busy-exit': () => busyReader(400, true),
  async 'read-and-leave'() {
    const img = await openImage({ lowers: [LOWER] });
    const z = await zfile.open(ZFILE);
    await z.read(0, 4096);
    parentPort!.postMessage((await img.read(0, 65536)).toString('base64'));
    // Left open on purpose when `leave`: the environment cleanup releases them.
    if (!(workerData as { leave: boolean }).leave) await Promise.all([img.close(), z.close()]);
  },
};

if (isMainThread) {
  const name = process.argv[2] ?? '';
  const run = scenarios[name];
  if (!run) throw new Error(`unknown scenario ${name}`);
  await run();
} else {
  await roles[(workerData as { role: string }).role]!();
}
