/** obdconv's documents: Go's json.Indent (output checked against go 1.19's) and the manifest's field order. */
import { describe, expect, it } from 'vitest';
import { goIndent, obdconvManifest } from '../lib/containerd/obdconv-docs.js';

describe('obdconv documents', () => {
  it("indents as Go's json.Indent with 3 spaces", () => {
    const compact = '{"a":[],"b":{},"c":[1,{"d":"x\\"y,{}[]:"},[]],"e":{"f":null,"g":true},"h":"\\u003c"}';
    // What `json.Indent(&out, in, "", "   ")` printed for `compact` under go 1.19.
    const want = [
      '{',
      '   "a": [],',
      '   "b": {},',
      '   "c": [',
      '      1,',
      '      {',
      '         "d": "x\\"y,{}[]:"',
      '      },',
      '      []',
      '   ],',
      '   "e": {',
      '      "f": null,',
      '      "g": true',
      '   },',
      '   "h": "\\u003c"',
      '}',
    ].join('\n');
    expect(goIndent(Buffer.from(compact)).toString()).toBe(want);
  });

  it('writes the manifest with the Docker mediaType last and sorted layer annotations', () => {
    const d = `sha256:${'a'.repeat(64)}`;
    const out = obdconvManifest(
      { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: d, size: 1 }, layers: [], annotations: { z: '1', a: '2' } },
      { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d, size: 3 },
      [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d, size: 4, annotations: { y: '1', b: '2' } }],
    ).toString();
    const m = JSON.parse(out);
    expect(Object.keys(m)).toEqual(['schemaVersion', 'config', 'layers', 'annotations', 'mediaType']);
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(Object.keys(m.layers[0].annotations)).toEqual(['b', 'y']);
    expect(Object.keys(m.annotations)).toEqual(['a', 'z']);
  });
});
