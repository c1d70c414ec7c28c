/**
 * containerd's filter syntax (containerd/filters): `selector ("," selector)*`
 * where a selector is `fieldpath [op value]`, fieldpath is fields joined by
 * `.`, a field is `[A-Za-z0-9_]+` or quoted, op is `==`, `!=` or `~=`, and
 * a value is quoted or runs to the next comma or space. Quotes are `"`, `/`
 * or `|` with Go escapes. Commas AND selectors; several filter strings OR.
 */
import { OverlaybdError } from '../errors.js';

/** Looks a field path up in an object: [value, present]. */
export type Adaptor = (fieldpath: string[]) => [string, boolean];

interface Selector {
  fieldpath: string[];
  op: 'present' | '==' | '!=' | '~=';
  value: string;
  re?: RegExp;
}

export type Filter = (a: Adaptor) => boolean;

function bad(input: string, pos: number, msg: string): OverlaybdError {
  return new OverlaybdError('EINVAL', `filter ${JSON.stringify(input)}: ${msg} at ${pos}`);
}

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

class Parser {
  pos = 0;
  constructor(readonly input: string) {}

  skipSpace(): void {
    while (this.pos < this.input.length && /\s/.test(this.input[this.pos]!)) this.pos++;
  }

  peek(): string | undefined {
    this.skipSpace();
    return this.input[this.pos];
  }

  quoted(): string {
    const quote = this.input[this.pos++]!;
    let out = '';
    for (;;) {
      const ch = this.input[this.pos++];
      if (ch === undefined) throw bad(this.input, this.pos, 'unterminated quoted string');
      if (ch === quote) return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const e = this.input[this.pos++];
      if (e === undefined) throw bad(this.input, this.pos, 'unterminated escape');
      if (e === quote) out += quote;
      else if (ESCAPES[e] !== undefined) out += ESCAPES[e];
      else if (/[0-7xuU]/.test(e)) {
        const [base, n] = e === 'x' ? [16, 2] : e === 'u' ? [16, 4] : e === 'U' ? [16, 8] : [8, 3];
        const digits = base === 8 ? e + this.input.slice(this.pos, this.pos + n - 1) : this.input.slice(this.pos, this.pos + n);
        if (digits.length !== n || !(base === 8 ? /^[0-7]+$/ : /^[0-9a-fA-F]+$/).test(digits)) throw bad(this.input, this.pos, 'illegal escape sequence');
        this.pos += base === 8 ? n - 1 : n;
        out += String.fromCodePoint(parseInt(digits, base));
      } else {
        // Regex-style quotes keep unknown escapes for the regexp engine.
        if (quote === '/' || quote === '|') out += '\\' + e;
        else throw bad(this.input, this.pos, 'illegal escape sequence');
      }
    }
  }

  field(): string {
    const ch = this.peek();
    if (ch === '"' || ch === '/' || ch === '|') return this.quoted();
    const m = /^[A-Za-z0-9_]+/.exec(this.input.slice(this.pos));
    if (!m) throw bad(this.input, this.pos, `expected a field, got ${ch === undefined ? 'end' : JSON.stringify(ch)}`);
    this.pos += m[0].length;
    return m[0];
  }

  value(): string {
    const ch = this.peek();
    if (ch === '"' || ch === '/' || ch === '|') return this.quoted();
    const m = /^[^\s,]+/.exec(this.input.slice(this.pos));
    if (!m) throw bad(this.input, this.pos, 'expected a value');
    this.pos += m[0].length;
    return m[0];
  }

  selector(): Selector {
    const fieldpath = [this.field()];
    while (this.peek() === '.') {
      this.pos++;
      fieldpath.push(this.field());
    }
    const ch = this.peek();
    if (ch === undefined || ch === ',') return { fieldpath, op: 'present', value: '' };
    const op = this.input.slice(this.pos, this.pos + 2);
    if (op !== '==' && op !== '!=' && op !== '~=') throw bad(this.input, this.pos, `expected an operator (==, != or ~=)`);
    this.pos += 2;
    const sel: Selector = { fieldpath, op, value: this.value() };
    if (op === '~=') {
      try {
        sel.re = new RegExp(sel.value);
      } catch (e) {
        throw bad(this.input, this.pos, `bad regular expression: ${(e as Error).message}`);
      }
    }
    return sel;
  }

  parse(): Selector[] {
    const out = [this.selector()];
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) return out;
      if (ch !== ',') throw bad(this.input, this.pos, `unexpected ${JSON.stringify(ch)}`);
      this.pos++;
      out.push(this.selector());
    }
  }
}

function match(s: Selector, a: Adaptor): boolean {
  const [v, present] = a(s.fieldpath);
  switch (s.op) {
    case 'present':
      return present;
    case '==':
      return present && v === s.value;
    case '!=':
      return v !== s.value;
    case '~=':
      return s.re!.test(v);
  }
}

/** One filter string: every selector must match. "" matches everything. */
export function parseFilter(input: string): Filter {
  if (input === '') return () => true;
  const sels = new Parser(input).parse();
  return (a) => sels.every((s) => match(s, a));
}

/** Several filter strings: any may match; none given matches everything. */
export function parseFilters(inputs: string[]): Filter {
  if (inputs.length === 0) return () => true;
  const fs = inputs.map(parseFilter);
  return (a) => fs.some((f) => f(a));
}
