/**
 * Convertor figures on a real bookworm minbase image (one 60 MB gzip
 * layer, 170 MB of tar): the conversion split into fetch, convert (mkfs +
 * apply + commit -z -t) and upload. Streamed (the default), the layer flows
 * from the response into the apply: fetch is the time to the last byte
 * received, convert runs from the apply's start (so the two overlap, and
 * convert includes gunzip and both digest checks). With --stage-layers
 * (the `staged` rows) fetch also covers gunzip, the diff_id check and
 * writing layer.tar, and convert starts after it. Both against
 * `skopeo copy` of the same image between two repositories,
 * measured in the same run: on another local registry (every byte moves,
 * the fair baseline) and on the same one (skopeo mounts the blobs). No dedup store, so every
 * stage does its full work; the default 64 GiB virtual size, as upstream.
 * The split runs in this process after a first conversion has warmed it
 * up; `convertor CLI` is the whole conversion as a user runs it: the built
 * `convertor` (dist/, rebuilt first) in a new process, as skopeo is.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { convert, openDedupStore } from '../lib/convertor/index.js';
import { silentLogger } from '../lib/log.js';
import { RegistryClient } from '../lib/registry/index.js';
import { bookwormLayout } from '../test/helpers/bookworm.js';
import { runScale } from './convert-scale.js';
import { skopeoCopy, startRegistry } from '../test/helpers/registry.js';
import { ROOT } from '../test/helpers/vectors.js';

const exec = promisify(execFile);

/** `npm run bench -- convert scale` adds the scale figures (bench/convert-scale.ts) to bookworm's. */
export async function run(): Promise<Record<string, number | string>> {
  const bookworm = await runBookworm();
  return process.argv.slice(2).includes('scale') ? { ...bookworm, ...(await runScale()) } : bookworm;
}

async function runBookworm(): Promise<Record<string, number | string>> {
  const bw = await bookwormLayout();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-bench-convert-'));
  const reg = await startRegistry({ mode: 'plain' });
  const reg2 = await startRegistry({ mode: 'plain' });
  try {
    await skopeoCopy(bw.layout, bw.tag, `${reg.host}/bench/src:${bw.tag}`);
    const copy = (dest: string) =>
      exec('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/bench/src:${bw.tag}`, dest]);
    // Same registry: skopeo mounts the blobs across repositories, so this moves no layer bytes.
    let t = performance.now();
    await copy(`docker://${reg.host}/bench/copy:${bw.tag}`);
    const mountMs = performance.now() - t;
    // A repository on another registry: every byte is read and written, as in a conversion.
    t = performance.now();
    await copy(`docker://${reg2.host}/bench/copy:${bw.tag}`);
    const skopeoMs = performance.now() - t;

    // Each run converts in its own registry, so neither finds the other's layer there.
    const once = async (stageLayers: boolean, repository: string) => {
      const client = new RegistryClient({ transport: { plainHttp: true }, credentials: { dockerConfig: false } });
      const store = await openDedupStore({ dbType: 'none' });
      const t0 = performance.now();
      const r = await convert(
        { repository, inputTag: bw.tag, overlaybdTag: 'obd', workDir: path.join(work, 'conv'), stageLayers },
        { client, store, logger: silentLogger },
      );
      const ms = performance.now() - t0;
      const stats = { ...client.stats };
      await client.close();
      return { m: r.manifests[0]!, ms, stats };
    };
    const staged = await once(true, `${reg2.host}/bench/copy`);
    const { m, ms: wallMs, stats } = await once(false, `${reg.host}/bench/src`);

    // The CLI, in a repository of its own (so no layer is found there already).
    execFileSync('npm', ['run', '--silent', 'build:ts'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    await copy(`docker://${reg.host}/bench/cli:${bw.tag}`);
    t = performance.now();
    await exec(process.execPath, [path.join(ROOT, 'dist/lib/cli/convertor.js'), '-r', `${reg.host}/bench/cli`, '-i', bw.tag, '--overlaybd', 'obd', '--plain', '--db-type', 'none', '-d', path.join(work, 'cli')]);
    const cliMs = performance.now() - t;
    const s = (ms: number) => Number((ms / 1000).toFixed(3));
    return {
      'source layer (gzip) MB': Number((bw.image.layers[0]!.size / 2 ** 20).toFixed(1)),
      'source tar MB': Number((fs.statSync(bw.tar).size / 2 ** 20).toFixed(1)),
      'overlaybd layer MB': Number((m.layers[0]!.size / 2 ** 20).toFixed(1)),
      'staged: fetch+gunzip+write s': s(staged.m.timings.download),
      'staged: convert s': s(staged.m.timings.convert),
      'staged: upload s': s(staged.m.timings.upload),
      'staged: total (wall) s': s(staged.ms),
      'convert: fetch (to last byte) s': s(m.timings.download),
      'convert: convert s': s(m.timings.convert),
      'convert: upload s': s(m.timings.upload),
      'convert: total (wall) s': s(wallMs),
      'skopeo copy to another registry s': s(skopeoMs),
      'skopeo copy, same registry (mount) s': s(mountMs),
      'convert total / skopeo copy': Number((wallMs / skopeoMs).toFixed(2)),
      'staged total / skopeo copy': Number((staged.ms / skopeoMs).toFixed(2)),
      'convertor CLI (new process) s': s(cliMs),
      'convertor CLI / skopeo copy': Number((cliMs / skopeoMs).toFixed(2)),
      'bytes uploaded MB': Number((stats.bytesUploaded / 2 ** 20).toFixed(1)),
      'layer digest': m.layers[0]!.digest,
    };
  } finally {
    await reg.stop();
    await reg2.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
