/**
 * docker's certs.d layout, read for the convertor's --cert-dir and for a
 * containerd hosts directory without hosts.toml: `*.crt` files are CAs, and
 * each `*.cert` is a client certificate whose key is the `*.key` of the
 * same name (a certificate without one is refused, as docker refuses it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError } from '../errors.js';

/** TLS files: CAs, and client pairs (a key of '' means the certificate's file holds the key too). */
export interface TlsFiles {
  ca: string[];
  clients: { cert: string; key: string }[];
}

/** The TLS files of a certs.d directory, in name order; none when it does not exist. */
export function certDirFiles(dir: string): TlsFiles {
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ca: [], clients: [] };
    throw new OverlaybdError('CONFIG_INVALID', `cannot read certificate directory ${dir}: ${(e as Error).message}`);
  }
  const files: TlsFiles = { ca: [], clients: [] };
  for (const name of names) {
    const full = path.join(dir, name);
    if (name.endsWith('.crt')) files.ca.push(full);
    else if (name.endsWith('.cert')) {
      const key = full.slice(0, -'.cert'.length) + '.key';
      if (!fs.existsSync(key)) throw new OverlaybdError('CONFIG_INVALID', `client certificate ${full} has no matching key ${key}`);
      files.clients.push({ cert: full, key });
    }
  }
  return files;
}
