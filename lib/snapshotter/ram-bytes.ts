/**
 * Sizes as docker's go-units RAMInBytes reads them, for `rootfsQuota` and
 * the disk_quota label. A module of its own so the config check needs
 * neither the native addon nor the mount table that quota.ts loads.
 */

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/**
 * A decimal number, an optional space, an optional binary unit prefix (k,
 * m, g, t, p, any case) with an optional `i` and `b` ("20g", "512MiB",
 * "1.5G", "4096"). Undefined when the text is not one.
 */
export function parseRamBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(text);
  if (!m) return undefined;
  return Math.trunc(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!);
}
