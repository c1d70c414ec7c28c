/**
 * The user a container's process runs as, resolved from the image config's
 * `User` the way containerd 1.6's client does for `ctr run`
 * (oci.WithImageConfig: WithUser, then WithAdditionalGIDs):
 *  - `uid`: the gid of that uid's /etc/passwd entry, else 0;
 *  - `name`: uid and gid of its /etc/passwd entry (an error if none);
 *  - `user:group`, `uid:group`, `user:gid`, `uid:gid`: each name looked up
 *    in /etc/passwd or /etc/group (an error if none);
 *  - additionalGids: the groups of /etc/group that list the user (root when
 *    the image names none) as a member, with the primary gid first.
 * The files are read from the container's root filesystem, with symlinks
 * resolved inside it, as containerd's fs.RootPath does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { OverlaybdError } from '../errors.js';

export interface ProcessUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** runc's limit, which containerd keeps: ids above it are read as names. */
const MAX_ID = 2 ** 31 - 1;

function numericId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const v = Number(s);
  return v <= MAX_ID ? v : undefined;
}

/**
 * `p` (absolute) inside `root` as chroot would see it: `..` stops at the
 * root and absolute symlinks start again from it, so nothing leaves it.
 */
export function pathInRoot(root: string, p: string): string {
  let todo = p.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '..') {
      done.pop();
      continue;
    }
    const full = path.join(root, ...done, c);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(full);
    } catch {
      done.push(c, ...todo);
      break;
    }
    if (!st.isSymbolicLink()) {
      done.push(c);
      continue;
    }
    if (++links > 255) throw new OverlaybdError('EINVAL', `${p} in the container's root: too many symbolic links`);
    const target = fs.readlinkSync(full);
    if (target.startsWith('/')) done.length = 0;
    todo = [...target.split('/').filter((x) => x !== '' && x !== '.'), ...todo];
  }
  return path.join(root, ...done);
}

/** The lines of a colon-separated file of the root, or undefined when it is missing. */
function readTable(root: string, file: string): string[][] | undefined {
  let text: string;
  try {
    text = fs.readFileSync(pathInRoot(root, file), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OverlaybdError('EIO', `cannot read ${file} of the container's root: ${(e as Error).message}`, { cause: e });
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

/** The root's /etc/passwd and /etc/group, each read at most once (undefined: the file is missing). */
class Tables {
  #passwd: PasswdEntry[] | undefined | null = null;
  #groups: GroupEntry[] | undefined | null = null;
  constructor(private readonly root: string) {}

  passwd(): PasswdEntry[] | undefined {
    if (this.#passwd === null) {
      this.#passwd = readTable(this.root, '/etc/passwd')?.map(([name = '', , uid = '', gid = '']) => ({ name, uid: Number(uid) || 0, gid: Number(gid) || 0 }));
    }
    return this.#passwd;
  }

  groups(): GroupEntry[] | undefined {
    if (this.#groups === null) {
      this.#groups = readTable(this.root, '/etc/group')?.map(([name = '', , gid = '', members = '']) => ({
        name,
        gid: Number(gid) || 0,
        members: members
          .split(',')
          .map((m) => m.trim())
          .filter((m) => m !== ''),
      }));
    }
    return this.#groups;
  }

  userNamed(name: string, spec: string): PasswdEntry {
    const u = this.passwd()?.find((e) => e.name === name);
    if (!u) throw new OverlaybdError('EINVAL', `image user "${spec}": no user ${name} in the image's /etc/passwd`);
    return u;
  }

  groupNamed(name: string, spec: string): number {
    const g = this.groups()?.find((e) => e.name === name);
    if (!g) throw new OverlaybdError('EINVAL', `image user "${spec}": no group ${name} in the image's /etc/group`);
    return g.gid;
  }
}

/** uid and gid of the image's `User` (WithUser). */
function primary(t: Tables, spec: string): { uid: number; gid: number } {
  const parts = spec.split(':');
  if (parts.length === 1) {
    const uid = numericId(spec);
    if (uid === undefined) {
      const u = t.userNamed(spec, spec);
      return { uid: u.uid, gid: u.gid };
    }
    return { uid, gid: t.passwd()?.find((e) => e.uid === uid)?.gid ?? 0 };
  }
  if (parts.length !== 2) throw new OverlaybdError('EINVAL', `invalid image user "${spec}": want user[:group]`);
  const [u, g] = parts as [string, string];
  const uid = numericId(u) ?? t.userNamed(u, spec).uid;
  const gid = numericId(g) ?? t.groupNamed(g, spec);
  return { uid, gid };
}

/** `spec` is the image config's User ('' when it names none); `root` the mounted root filesystem. */
export function resolveImageUser(spec: string, root: string): ProcessUser {
  const t = new Tables(root);
  const { uid, gid } = spec === '' ? { uid: 0, gid: 0 } : primary(t, spec);
  // WithAdditionalGIDs: of uid's user name (none without a passwd entry), or of root.
  const name = spec === '' ? 'root' : t.passwd()?.find((e) => e.uid === uid)?.name;
  const extra = name === undefined ? [] : (t.groups() ?? []).filter((g) => g.name !== name && g.members.includes(name)).map((g) => g.gid);
  return { uid, gid, additionalGids: extra.includes(gid) ? extra : [gid, ...extra] };
}
