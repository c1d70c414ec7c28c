/**
 * One-layer images for the flat-memory cases of issue 11, generated as
 * streams (helpers/tar-stream.ts) and cached under
 * /var/cache/overlaybd-test/rss-<case>-v<version>: a layer of 4 GiB, a
 * single 6 GiB (dense) file, 200k files. Their gzip blobs are small (the
 * content is compressible) but the tars are real: every byte goes through
 * the conversion.
 */
import fs from 'node:fs';
import path from 'node:path';
import { imageDocuments, SCALE_CACHE, type ScaleImage } from './scale-image.js';
import { writeGzipLayer, type GenEntry, type WrittenLayer } from './tar-stream.js';

export type RssCase = 'layer-4g' | 'file-6g' | 'files-200k';
const VERSION = 1;
const MiB = 2 ** 20;

function* entries(c: RssCase): Generator<GenEntry> {
  if (c === 'layer-4g') {
    yield { type: 'dir', path: 'data' };
    for (let i = 0; i < 32; i++) yield { type: 'file', path: `data/part${String(i).padStart(2, '0')}.bin`, size: 128 * MiB, seed: 1000 + i };
  } else if (c === 'file-6g') {
    yield { type: 'dir', path: 'data' };
    yield { type: 'file', path: 'data/big.bin', size: 6 * 1024 * MiB, seed: 6 };
  } else {
    for (let d = 0; d < 200; d++) {
      const dir = `tree/d${String(d).padStart(3, '0')}`;
      if (d === 0) yield { type: 'dir', path: 'tree' };
      yield { type: 'dir', path: dir };
      for (let f = 0; f < 1000; f++) yield { type: 'file', path: `${dir}/f${String(f).padStart(4, '0')}`, size: 100 + ((d * 1000 + f) % 3000), seed: d * 1000 + f };
    }
  }
}

export interface RssImage extends Pick<ScaleImage, 'config' | 'manifest'> {
  layers: WrittenLayer[];
  /** Uncompressed tar bytes. */
  tarBytes: number;
}

/** Builds (or reuses) the image of one case. */
export async function rssImage(c: RssCase): Promise<RssImage> {
  const dir = path.join(SCALE_CACHE, `rss-${c}-v${VERSION}`);
  const meta = path.join(dir, 'layer.json');
  if (!fs.existsSync(meta)) {
    const tmp = `${dir}.${process.pid}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    try {
      const l = await writeGzipLayer(path.join(tmp, 'layer.tar.gz'), entries(c));
      fs.writeFileSync(path.join(tmp, 'layer.json'), JSON.stringify({ ...l, file: 'layer.tar.gz' }));
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  const l = JSON.parse(fs.readFileSync(meta, 'utf8')) as WrittenLayer;
  const layer = { ...l, file: path.join(dir, l.file) };
  return { layers: [layer], tarBytes: layer.tarBytes, ...imageDocuments([layer]) };
}
