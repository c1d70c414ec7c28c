/**
 * The config and manifest `ctr obdconv` writes, byte for byte as upstream's
 * Go code marshals them: json.MarshalIndent with a 3-space indent, the
 * config as ocispec.Image with diff_ids replaced, the manifest as the source
 * manifest with its layers replaced and a Docker schema2 mediaType field
 * that Go writes last (it shadows the embedded struct's).
 */
import { goMarshalBytes, GoMap } from '../convertor/gojson.js';
import { descriptorStruct, marshalConfig, type Descriptor, type ImageConfig, type Manifest } from '../convertor/spec.js';
import { MediaTypes } from '../registry/index.js';

export const OBDCONV_INDENT = '   ';

/** Go's json.Indent of compact JSON: empty `{}`/`[]` stay on one line, `": "` after keys, no trailing newline. */
export function goIndent(compact: Buffer, indent = OBDCONV_INDENT): Buffer {
  const s = compact.toString('utf8');
  let out = '';
  let depth = 0;
  let needIndent = false;
  const newline = () => (out += '\n' + indent.repeat(depth));
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '"') {
      // Copy the string through its closing quote, escapes included.
      let j = i + 1;
      while (s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      if (needIndent) {
        needIndent = false;
        depth++;
        newline();
      }
      out += s.slice(i, j + 1);
      i = j;
      continue;
    }
    if (needIndent && c !== ']' && c !== '}') {
      needIndent = false;
      depth++;
      newline();
    }
    switch (c) {
      case '{':
      case '[':
        out += c;
        needIndent = true;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ': ';
        break;
      case '}':
      case ']':
        if (needIndent) needIndent = false;
        else {
          depth--;
          newline();
        }
        out += c;
        break;
      default:
        out += c;
    }
  }
  return Buffer.from(out, 'utf8');
}

/** The converted config: the source's fields, `rootfs.diff_ids` = the overlaybd blob digests. */
export function obdconvConfig(config: ImageConfig, layerDigests: string[], what: string): Buffer {
  return goIndent(marshalConfig(config, layerDigests, what));
}

/** The converted manifest: the source's (subject, annotations kept), new config and layers, Docker schema2 mediaType. */
export function obdconvManifest(source: Manifest, config: Descriptor, layers: Descriptor[]): Buffer {
  return goIndent(
    goMarshalBytes({
      schemaVersion: source.schemaVersion,
      config: descriptorStruct(config),
      layers: layers.map(descriptorStruct),
      subject: source.subject ? descriptorStruct(source.subject) : undefined,
      annotations: source.annotations && Object.keys(source.annotations).length > 0 ? new GoMap(Object.entries(source.annotations)) : undefined,
      mediaType: MediaTypes.dockerManifest,
    }),
  );
}
