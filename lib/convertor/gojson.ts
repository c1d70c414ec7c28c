/**
 * JSON bytes as Go's encoding/json writes them, so that what we serialise
 * hashes to what upstream's convertor would push: struct fields in the
 * order given (plain objects keep insertion order), map keys sorted by
 * bytes (GoMap), no whitespace, and Go's string escaping (<, >, & and
 * U+2028/U+2029 as \u escapes; lone surrogates become U+FFFD).
 */

/** A Go map: its keys are written sorted bytewise, whatever order they came in. */
export class GoMap {
  readonly entries: [string, unknown][];
  constructor(entries: Iterable<[string, unknown]>) {
    this.entries = [...entries];
  }
  get size(): number {
    return this.entries.length;
  }
}

const HEX = '0123456789abcdef';

export function goString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = s.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        out += s[i]! + s[i + 1]!;
        i++;
      } else {
        out += '\ufffd';
      }
      continue;
    }
    switch (c) {
      case 0x22:
        out += '\\"';
        continue;
      case 0x5c:
        out += '\\\\';
        continue;
      case 0x0a:
        out += '\\n';
        continue;
      case 0x0d:
        out += '\\r';
        continue;
      case 0x09:
        out += '\\t';
        continue;
      case 0x08:
        out += '\\b';
        continue;
      case 0x0c:
        out += '\\f';
        continue;
      case 0x3c:
      case 0x3e:
      case 0x26:
        out += '\\u00' + HEX[c >> 4] + HEX[c & 0xf];
        continue;
      case 0x2028:
        out += '\\u2028';
        continue;
      case 0x2029:
        out += '\\u2029';
        continue;
    }
    if (c < 0x20) out += '\\u00' + HEX[c >> 4] + HEX[c & 0xf];
    else out += s[i];
  }
  return out + '"';
}

function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Serialises like json.Marshal. `undefined` object members are left out (omitempty is decided by the caller). */
export function goMarshal(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return goString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`cannot marshal ${v}`);
    return String(v);
  }
  if (Array.isArray(v)) return '[' + v.map(goMarshal).join(',') + ']';
  if (v instanceof GoMap) {
    const sorted = [...v.entries].sort((a, b) => byteCompare(a[0], b[0]));
    return '{' + sorted.map(([k, x]) => goString(k) + ':' + goMarshal(x)).join(',') + '}';
  }
  if (typeof v === 'object') {
    const parts: string[] = [];
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      parts.push(goString(k) + ':' + goMarshal(x));
    }
    return '{' + parts.join(',') + '}';
  }
  throw new TypeError(`cannot marshal a ${typeof v}`);
}

export function goMarshalBytes(v: unknown): Buffer {
  return Buffer.from(goMarshal(v), 'utf8');
}
