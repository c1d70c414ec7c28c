/**
 * The image user as containerd 1.6's client resolves it (oci.WithUser,
 * WithAdditionalGIDs), over a root directory holding /etc/passwd and
 * /etc/group. record-trace.test.ts checks the same against `ctr run`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathInRoot, resolveImageUser } from '../lib/containerd/image-user.js';

const PASSWD = ['root:x:0:0:root:/root:/bin/bash', '# a comment', '', 'daemon:x:1:1::/:/bin/false', 'alice:x:1000:1000::/home/alice:/bin/sh', 'nobody:x:65534:65534::/:/bin/false'];
const GROUP = ['root:x:0:', 'daemon:x:1:', 'staff:x:50:alice,bob', 'audio:x:29:alice', 'alice:x:1000:alice', 'wheel:x:10:root', 'nogroup:x:65534:'];

let dir: string;
function root(files: Record<string, string[] | { link: string }>): string {
  const r = fs.mkdtempSync(path.join(dir, 'root-'));
  for (const [name, body] of Object.entries(files)) {
    const p = path.join(r, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (Array.isArray(body)) fs.writeFileSync(p, body.join('\n') + '\n');
    else fs.symlinkSync(body.link, p);
  }
  return r;
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'obd-image-user-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('resolveImageUser', () => {
  it('resolves every form of User that containerd takes', () => {
    const r = root({ 'etc/passwd': PASSWD, 'etc/group': GROUP });
    // No user: root, with the groups that list root.
    expect(resolveImageUser('', r)).toEqual({ uid: 0, gid: 0, additionalGids: [0, 10] });
    expect(resolveImageUser('alice', r)).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 50, 29] });
    // A uid takes its passwd entry's gid; one without an entry gets gid 0.
    expect(resolveImageUser('1000', r)).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 50, 29] });
    expect(resolveImageUser('4242', r)).toEqual({ uid: 4242, gid: 0, additionalGids: [0] });
    expect(resolveImageUser('nobody', r)).toEqual({ uid: 65534, gid: 65534, additionalGids: [65534] });
    expect(resolveImageUser('alice:staff', r)).toEqual({ uid: 1000, gid: 50, additionalGids: [50, 29] });
    expect(resolveImageUser('1000:7', r)).toEqual({ uid: 1000, gid: 7, additionalGids: [7, 50, 29] });
    expect(resolveImageUser('4242:audio', r)).toEqual({ uid: 4242, gid: 29, additionalGids: [29] });
    // Above runc's limit a number is read as a name.
    expect(() => resolveImageUser('4294967295', r)).toThrow(/no user 4294967295 in the image's \/etc\/passwd/);
  });

  it('names what is missing or malformed', () => {
    const r = root({ 'etc/passwd': PASSWD, 'etc/group': GROUP });
    expect(() => resolveImageUser('mallory', r)).toThrow(/image user "mallory": no user mallory in the image's \/etc\/passwd/);
    expect(() => resolveImageUser('alice:nope', r)).toThrow(/no group nope in the image's \/etc\/group/);
    expect(() => resolveImageUser('a:b:c', r)).toThrow(/invalid image user "a:b:c"/);
    const bare = root({});
    expect(resolveImageUser('', bare)).toEqual({ uid: 0, gid: 0, additionalGids: [0] });
    expect(resolveImageUser('123', bare)).toEqual({ uid: 123, gid: 0, additionalGids: [0] });
    expect(resolveImageUser('123:45', bare)).toEqual({ uid: 123, gid: 45, additionalGids: [45] });
    expect(() => resolveImageUser('alice', bare)).toThrow(/no user alice/);
  });

  it('follows symlinks inside the root only', () => {
    // An absolute link is taken from the container's root, not the host's.
    const r = root({ 'etc/passwd': { link: '/usr/share/base/passwd' }, 'usr/share/base/passwd': PASSWD, 'etc/group': { link: '../../../../group' }, group: GROUP });
    expect(resolveImageUser('alice', r)).toEqual({ uid: 1000, gid: 1000, additionalGids: [1000, 50, 29] });
    expect(pathInRoot(r, '/etc/passwd')).toBe(path.join(r, 'usr/share/base/passwd'));
    expect(pathInRoot(r, '/../../etc/group')).toBe(path.join(r, 'group'));
    const loop = root({ 'etc/passwd': { link: '/etc/passwd' } });
    expect(() => resolveImageUser('alice', loop)).toThrow(/too many symbolic links/);
  });
});
