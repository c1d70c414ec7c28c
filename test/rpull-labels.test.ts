/** The label, chainID and platform rules rpull shares with containerd's Go client. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chainIds,
  childGcLabels,
  distributionSourceLabel,
  extractionKey,
  inheritedLabels,
  parsePlatform,
  platformMatches,
  randomLeaseId,
  rfc3339,
} from '../lib/containerd/index.js';
import { isOverlaybdError } from '../lib/errors.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('containerd labels', () => {
  it('computes chainIDs as identity.ChainID does', () => {
    const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');
    const c2 = sha(`${d('a')} ${d('b')}`);
    expect(chainIds([d('a'), d('b'), d('c')])).toEqual([d('a'), c2, sha(`${c2} ${d('c')}`)]);
    expect(chainIds([])).toEqual([]);
  });

  it('numbers child GC labels by kind as SetChildrenMappedLabels does', () => {
    const labels = childGcLabels([
      { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d('c') },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('1') },
      { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: d('2') },
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: d('m') },
      { mediaType: 'application/x-other', digest: d('o') },
    ]);
    expect(labels).toEqual({
      'containerd.io/gc.ref.content.config': d('c'),
      'containerd.io/gc.ref.content.l.0': d('1'),
      'containerd.io/gc.ref.content.l.1': d('2'),
      'containerd.io/gc.ref.content.m.0': d('m'),
      'containerd.io/gc.ref.content.0': d('o'),
    });
  });

  it('appends to the distribution source label, sorted, without the port or duplicates', () => {
    expect(distributionSourceLabel('127.0.0.1:5000', 'demo/b')).toEqual(['containerd.io/distribution.source.127.0.0.1', 'demo/b']);
    const key = 'containerd.io/distribution.source.reg.example.com';
    expect(distributionSourceLabel('reg.example.com', 'a/x', { [key]: 'b/y,c/z' })).toEqual([key, 'a/x,b/y,c/z']);
    expect(distributionSourceLabel('reg.example.com', 'b/y', { [key]: 'b/y' })).toEqual([key, 'b/y']);
  });

  it('inherits only containerd.io/snapshot/ annotations and snapshot.ref', () => {
    expect(
      inheritedLabels({
        'containerd.io/snapshot/overlaybd/blob-digest': d('1'),
        'containerd.io/snapshot.ref': 'x',
        'containerd.io/snapshotter': 'no',
        'org.opencontainers.image.title': 'no',
      }),
    ).toEqual({ 'containerd.io/snapshot/overlaybd/blob-digest': d('1'), 'containerd.io/snapshot.ref': 'x' });
    expect(inheritedLabels(undefined)).toEqual({});
  });

  it('makes keys and ids in the Go client formats', () => {
    expect(extractionKey(d('a'))).toMatch(/^extract-\d+-[A-Za-z0-9_-]{4} sha256:a{64}$/);
    expect(randomLeaseId()).toMatch(/^\d+-[A-Za-z0-9_-]{4}$/);
    expect(rfc3339(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)))).toBe('2026-01-02T03:04:05Z');
  });
});

describe('platform selection', () => {
  it('parses os/arch[/variant] and common aliases', () => {
    expect(parsePlatform('linux/amd64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm/v7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    for (const bad of ['', 'linux//amd64', 'a/b/c/d', 'linux/amd 64']) {
      expect(() => parsePlatform(bad)).toThrow(/invalid platform/);
      try {
        parsePlatform(bad);
      } catch (e) {
        expect(isOverlaybdError(e, 'CONFIG_INVALID')).toBe(true);
      }
    }
  });

  it('matches variants only when both name one (arm64 means v8)', () => {
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'amd64' })).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' })).toBe(false);
    expect(platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, undefined)).toBe(false);
  });
});
