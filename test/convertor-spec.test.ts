/**
 * The convertor's pure parts: Go-compatible JSON, config/manifest/index
 * re-serialisation, chain IDs and uuids, media types and annotations.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chainIds, uuidFromChainId } from '../lib/convertor/chain.js';
import { GoMap, goMarshal, goString } from '../lib/convertor/gojson.js';
import { layerAnnotations, outputTypes } from '../lib/convertor/media.js';
import {
  ImageConfigSchema,
  IndexSchema,
  goTime,
  marshalConfig,
  marshalIndex,
  marshalManifest,
  parseDocument,
} from '../lib/convertor/spec.js';
import { concurrencyLimit } from '../lib/convertor/options.js';
import { isOverlaybdError } from '../lib/errors.js';

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

describe('Go JSON', () => {
  it('escapes like encoding/json', () => {
    expect(goString('a<b>&c')).toBe('"a\\u003cb\\u003e\\u0026c"');
    expect(goString('tab\there\nq"\\')).toBe('"tab\\there\\nq\\"\\\\"');
    expect(goString('\u0001\u001f\u007f')).toBe('"\\u0001\\u001f\u007f"');
    expect(goString('\b\f')).toBe('"\\b\\f"');
    expect(goString('\u2028\u2029é😀')).toBe('"\\u2028\\u2029é😀"');
    expect(goString('lone \ud800 surrogate')).toBe('"lone \ufffd surrogate"');
  });

  it('sorts map keys bytewise and keeps struct order', () => {
    const m = new GoMap([
      ['b', 1],
      ['a', 2],
      ['10', 3],
      ['9', 4],
      ['Z', 5],
    ]);
    expect(goMarshal({ z: 1, a: m, skipped: undefined, list: [true, null] })).toBe(
      '{"z":1,"a":{"10":3,"9":4,"Z":5,"a":2,"b":1},"list":[true,null]}',
    );
  });

  it('re-formats times as time.Time does', () => {
    expect(goTime('2023-12-04T22:45:52Z', 't')).toBe('2023-12-04T22:45:52Z');
    expect(goTime('2023-12-04T22:45:52.120000000Z', 't')).toBe('2023-12-04T22:45:52.12Z');
    expect(goTime('2023-12-04T22:45:52.000Z', 't')).toBe('2023-12-04T22:45:52Z');
    expect(goTime('2023-12-04T22:45:52.1234567891Z', 't')).toBe('2023-12-04T22:45:52.123456789Z');
    expect(goTime('2023-12-04T22:45:52+00:00', 't')).toBe('2023-12-04T22:45:52Z');
    expect(goTime('2023-12-04T22:45:52-07:00', 't')).toBe('2023-12-04T22:45:52-07:00');
    expect(() => goTime('yesterday', 'config: created')).toThrow(/config: created: "yesterday" is not an RFC 3339 time/);
  });
});

describe('config re-serialisation', () => {
  const docker = {
    architecture: 'amd64',
    config: {
      Hostname: '',
      Domainname: '',
      User: '',
      AttachStdin: false,
      ExposedPorts: { '6379/tcp': {} },
      Tty: false,
      Env: ['PATH=/usr/bin', 'A=<x>&y'],
      Cmd: ['redis-server'],
      Healthcheck: { Test: ['NONE'] },
      Image: 'sha256:abc',
      Volumes: { '/data': {} },
      WorkingDir: '/data',
      Entrypoint: ['docker-entrypoint.sh'],
      OnBuild: null,
      Labels: { 'z.label': '1', 'a.label': '2' },
      Shell: ['/bin/sh'],
    },
    container: 'deadbeef',
    container_config: { Cmd: ['/bin/sh'] },
    created: '2023-12-04T22:45:52.000000000Z',
    docker_version: '20.10.23',
    history: [
      { created: '2023-12-04T22:45:52Z', created_by: '/bin/sh -c #(nop) CMD ["bash"]', empty_layer: true },
      { created: '2023-12-04T22:45:52Z', created_by: 'RUN echo >&2 hi', comment: 'buildkit.dockerfile.v0' },
    ],
    os: 'linux',
    variant: 'v8',
    rootfs: { type: 'layers', diff_ids: ['sha256:' + '1'.repeat(64)] },
  };

  it('keeps only the image-spec fields, in Go order, with diff_ids replaced', () => {
    const c = parseDocument(ImageConfigSchema, Buffer.from(JSON.stringify(docker)), 'config');
    const out = marshalConfig(c, ['sha256:' + 'f'.repeat(64)]).toString();
    expect(out).toBe(
      '{"created":"2023-12-04T22:45:52Z","architecture":"amd64","os":"linux","variant":"v8",' +
        '"config":{"ExposedPorts":{"6379/tcp":{}},"Env":["PATH=/usr/bin","A=\\u003cx\\u003e\\u0026y"],' +
        '"Entrypoint":["docker-entrypoint.sh"],"Cmd":["redis-server"],"Volumes":{"/data":{}},"WorkingDir":"/data",' +
        '"Labels":{"a.label":"2","z.label":"1"}},' +
        `"rootfs":{"type":"layers","diff_ids":["sha256:${'f'.repeat(64)}"]},` +
        '"history":[{"created":"2023-12-04T22:45:52Z","created_by":"/bin/sh -c #(nop) CMD [\\"bash\\"]","empty_layer":true},' +
        '{"created":"2023-12-04T22:45:52Z","created_by":"RUN echo \\u003e\\u00262 hi","comment":"buildkit.dockerfile.v0"}]}',
    );
  });

  it('writes an empty config object and omits empty lists, as omitempty does', () => {
    const c = parseDocument(
      ImageConfigSchema,
      Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux', config: null, rootfs: { type: 'layers', diff_ids: [] }, history: [] })),
      'config',
    );
    expect(marshalConfig(c, ['sha256:' + 'a'.repeat(64)]).toString()).toBe(
      `{"architecture":"arm64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:${'a'.repeat(64)}"]}}`,
    );
  });

  it('names the field of a malformed config', () => {
    let err: unknown;
    try {
      parseDocument(ImageConfigSchema, Buffer.from('{"rootfs":{"diff_ids":[1]}}'), 'config sha256:x');
    } catch (e) {
      err = e;
    }
    expect(isOverlaybdError(err, 'CONVERT_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/config sha256:x: rootfs\.diff_ids\[0\]: /);
  });
});

describe('manifest and index', () => {
  // The layers of upstream's golden redis conversion (ci/uconv_reproduce/redis/manifest.json, 3472 bytes).
  const golden: [string, number][] = [
    ['a640fc493a1522f8e40b74dc77386011d1d10783d81750b8135e127b703d5d93', 46912000],
    ['d5fdb13be1b316474cbf894ba53a4da8b93239216fb400f1cdef70e57928a7cf', 623616],
    ['ef2248d97da7998d4a3365a9fa6b04097320cbeaaaecac8863b68e9c490f0a73', 721408],
    ['050b8447b04f15dd4858fedc5220e38fbe16b82b6312a0d109057b874368704d', 3398144],
    ['d344d9a63442f0140c8a52c8baf6d5dd3a5efafe17f892f9d64275252dda1170', 36371968],
    ['1c64ce1a3bce82b75da173470b150f730856213039996d88ac1ed9ea3f25a713', 611840],
    ['9ed898bdae406cdc98afe2befd7d38996250add262d943c10deb758489de0fca', 11264],
    ['92e2b8b3a96c9b4d9960205dce53be761327c073cc67325590d176526136ad84', 649728],
  ];

  it('writes the Docker manifest byte for byte as upstream does', () => {
    const t = outputTypes(false);
    const out = marshalManifest({
      mediaType: t.manifest,
      config: { mediaType: t.config, digest: 'sha256:033843c467845ea16b10160341f001495b1f8c7ce8587c6cf02fac96a14c8ba3', size: 9164 },
      layers: golden.map(([hex, size]) => ({
        mediaType: t.layer,
        digest: `sha256:${hex}`,
        size,
        annotations: layerAnnotations(`sha256:${hex}`, size),
      })),
    });
    expect(out.length).toBe(3472);
    const s = out.toString();
    expect(s.startsWith('{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{')).toBe(true);
    expect(s).toContain(
      '{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"sha256:9ed898bdae406cdc98afe2befd7d38996250add262d943c10deb758489de0fca","size":11264,' +
        '"annotations":{"containerd.io/snapshot/overlaybd/blob-digest":"sha256:9ed898bdae406cdc98afe2befd7d38996250add262d943c10deb758489de0fca",' +
        '"containerd.io/snapshot/overlaybd/blob-size":"11264","containerd.io/snapshot/overlaybd/version":"0.1.0"}}',
    );
  });

  it('writes OCI types, artifactType and subject for --referrer', () => {
    const t = outputTypes(true);
    expect(t).toEqual({
      manifest: 'application/vnd.oci.image.manifest.v1+json',
      config: 'application/vnd.oci.image.config.v1+json',
      layer: 'application/vnd.oci.image.layer.v1.tar',
    });
    const out = marshalManifest({
      mediaType: t.manifest,
      artifactType: 'application/vnd.containerd.overlaybd.native.v1+json',
      config: { mediaType: t.config, digest: sha('c'), size: 1 },
      layers: [],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha('s'), size: 7 },
    }).toString();
    expect(out).toBe(
      `{"schemaVersion":2,"mediaType":"${t.manifest}","artifactType":"application/vnd.containerd.overlaybd.native.v1+json",` +
        `"config":{"mediaType":"${t.config}","digest":"${sha('c')}","size":1},"layers":[],` +
        `"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${sha('s')}","size":7}}`,
    );
  });

  it('keeps platform and annotations of index entries, dropping what image-spec lacks', () => {
    const ix = parseDocument(
      IndexSchema,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
          manifests: [
            {
              mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
              size: 525,
              digest: sha('m'),
              platform: { os: 'linux', architecture: 'arm64', variant: 'v8', features: ['sse4'] },
              annotations: { b: '1', a: '2' },
            },
          ],
        }),
      ),
      'index',
    );
    expect(marshalIndex({ mediaType: ix.mediaType!, manifests: ix.manifests! }).toString()).toBe(
      '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[' +
        `{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"${sha('m')}","size":525,` +
        '"annotations":{"a":"2","b":"1"},"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}',
    );
  });
});

describe('chain IDs and uuids', () => {
  it('chains diff IDs as containerd does', () => {
    const a = 'sha256:' + 'a'.repeat(64);
    const b = 'sha256:' + 'b'.repeat(64);
    const c = 'sha256:' + 'c'.repeat(64);
    const ab = 'sha256:' + createHash('sha256').update(`${a} ${b}`).digest('hex');
    const abc = 'sha256:' + createHash('sha256').update(`${ab} ${c}`).digest('hex');
    expect(chainIds([a, b, c])).toEqual([a, ab, abc]);
    expect(chainIds([])).toEqual([]);
    expect(() => chainIds(['md5:x'])).toThrow(/diff_id "md5:x"/);
  });

  it('formats the first 32 hex digits as a uuid', () => {
    expect(uuidFromChainId('sha256:a640fc493a1522f8e40b74dc77386011d1d10783d81750b8135e127b703d5d93')).toBe(
      'a640fc49-3a15-22f8-e40b-74dc77386011',
    );
  });
});

describe('concurrency limit', () => {
  const peakOf = async (limit: number, tasks: number): Promise<number> => {
    const run = concurrencyLimit(limit);
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: tasks }, () =>
        run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5));
          active--;
        }),
      ),
    );
    return peak;
  };

  it('never runs more than its limit; 0 means no bound', async () => {
    expect(await peakOf(2, 6)).toBe(2);
    expect(await peakOf(0, 6)).toBe(6);
  });
});
