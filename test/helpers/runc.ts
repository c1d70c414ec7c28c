/**
 * runc keeps its containers under /run/containerd/runc/<namespace> for every
 * containerd on the machine, and a killed shim leaves its container running:
 * a test that fails midway removes what it started here, by namespace.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const runcRoot = (namespace: string) => `/run/containerd/runc/${namespace}`;

/** Kills and deletes every runc container in `namespace`, then its state dir. */
export function removeRuncContainers(namespace: string): void {
  const root = runcRoot(namespace);
  if (!fs.existsSync(root)) return;
  const ids = execFileSync('runc', ['--root', root, 'list', '-q'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const id of ids) {
    try {
      execFileSync('runc', ['--root', root, 'delete', '--force', id], { stdio: 'pipe' });
    } catch {
      /* gone meanwhile */
    }
  }
  fs.rmSync(root, { recursive: true, force: true });
}
