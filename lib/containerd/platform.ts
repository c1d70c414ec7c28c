/**
 * Platform selection in an image index, as containerd's default matcher
 * does for a pull: the host's os/architecture (or `--platform`), variants
 * compared when both sides name one (arm64 means v8).
 */
import { OverlaybdError } from '../errors.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const GOARCH: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform of this host, in Go's names. */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  return { os: process.platform === 'win32' ? 'windows' : process.platform, architecture, ...(architecture === 'arm64' ? { variant: 'v8' } : {}) };
}

/** Parses `os/arch[/variant]` (or `arch` alone, for linux). */
export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/');
  const ok = /^[a-z0-9_.-]+$/;
  if (parts.length > 3 || parts.some((p) => !ok.test(p))) {
    throw new OverlaybdError('CONFIG_INVALID', `invalid platform "${s}": want os/arch[/variant], e.g. linux/amd64`);
  }
  const [os, architecture, variant] = parts.length === 1 ? ['linux', parts[0]!] : parts;
  const arch = architecture === 'x86_64' || architecture === 'x86-64' ? 'amd64' : architecture === 'aarch64' ? 'arm64' : architecture!;
  return { os: os!, architecture: arch, ...(variant ? { variant } : {}) };
}

export function formatPlatform(p: Partial<Platform> | null | undefined): string {
  if (!p) return 'unknown';
  return [p.os ?? '?', p.architecture ?? '?', ...(p.variant ? [p.variant] : [])].join('/');
}

function normVariant(p: Partial<Platform>): string | undefined {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === '' || p.variant === '8')) return 'v8';
  return p.variant || undefined;
}

/** Does an index entry's platform satisfy `want`? */
export function platformMatches(want: Platform, have: Partial<Platform> | null | undefined): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  const wv = normVariant(want);
  const hv = normVariant(have);
  return wv === undefined || hv === undefined || wv === hv;
}
