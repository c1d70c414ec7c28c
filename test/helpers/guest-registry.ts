/**
 * A remote (lazy) bookworm image for a qemu guest, which has no network to
 * the host: the converted image is pushed to a host registry, whose storage
 * is then copied into the guest's share dir with a docker-registry config
 * serving it on the guest's own loopback. test/guest/remote-eio.sh starts
 * that registry in the guest and stops it to make the backing unreachable.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { remoteBookworm } from './remote-image.js';

/** The guest registry's address (the guest's loopback is its own). */
export const GUEST_REGISTRY = '127.0.0.1:5000';

export interface GuestRemoteImage {
  /** docker-registry config for the guest (storage in the share). */
  registryConfig: string;
  /** config.v1.json of the remote image; its lowers' dirs are under `lowerDir` in the guest. */
  imageConfig: string;
}

/**
 * Writes `<share>/registry/` (storage), `<share>/registry.yml` and
 * `<share>/remote.json` (lowers downloaded into `lowerDir`/lower<i>, a guest
 * path the script creates). The host registry is stopped before returning.
 */
export async function prepareGuestRemoteImage(share: string, lowerDir: string): Promise<GuestRemoteImage> {
  const remote = await remoteBookworm();
  const storage = path.join(share, 'registry');
  try {
    execFileSync('cp', ['-a', path.join(remote.registry.dir, 'data'), storage]);
  } finally {
    await remote.close();
  }
  const registryConfig = path.join(share, 'registry.yml');
  fs.writeFileSync(
    registryConfig,
    [
      'version: 0.1',
      'log: {level: warn, accesslog: {disabled: true}}',
      `storage: {filesystem: {rootdirectory: ${JSON.stringify(storage)}}}`,
      `http: {addr: "${GUEST_REGISTRY}", secret: overlaybd-guest-test}`,
      '',
    ].join('\n'),
  );
  const imageConfig = path.join(share, 'remote.json');
  const config = {
    repoBlobUrl: `http://${GUEST_REGISTRY}/v2/${remote.repo}/blobs`,
    lowers: remote.lowers.map((l, i) => ({ digest: l.digest, size: l.size, dir: `${lowerDir}/lower${i}` })),
  };
  fs.writeFileSync(imageConfig, JSON.stringify(config));
  return { registryConfig, imageConfig };
}
