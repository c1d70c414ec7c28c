"""File-level view of a filesystem tree, for the ext4 apply tests.

  ext4_tree.py model TAR...   what applying the layer tars in order must give,
                              computed from the tars alone (Python's tarfile)
                              with OCI/containerd semantics: whiteouts, opaque
                              directories, replacement, hard links sharing an
                              inode whose metadata the link header sets
  ext4_tree.py walk DIR       the same view of a mounted filesystem

Both print one JSON object: {path: node} ("" is the root) plus "links": the
hard-link groups (sorted lists of paths sharing an inode, 2 or more)."""
import hashlib
import json
import os
import stat
import sys
import tarfile
from decimal import Decimal

WH = ".wh."
OPQ = ".wh..wh..opq"


class Inode:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def node(self):
        return dict(self.__dict__)


def clean(name):
    parts = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/".join(parts)


MAX_NS = (1 << 63) - 1  # containerd's bound: a 64-bit count of nanoseconds


def mtime_ns(m):
    s = m.pax_headers.get("mtime")
    ns = int(Decimal(s) * 1_000_000_000) if s is not None else int(m.mtime) * 1_000_000_000
    # As containerd: outside [epoch, 2262] becomes the epoch.
    return ns if 0 <= ns <= MAX_NS else 0


def xattrs_of(m):
    out = {}
    for k, v in m.pax_headers.items():
        for prefix in ("SCHILY.xattr.", "LIBARCHIVE.xattr."):
            if k.startswith(prefix):
                raw = v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v
                out[k[len(prefix):]] = raw.hex()
    return out


def model(tars):
    tree = {"": Inode(type="dir", mode=0o755, uid=0, gid=0, mtime=None, xattrs={})}

    def remove(path):
        # Only a directory has descendants: a file's removal stays O(1), so
        # deletion layers over large directories model in linear time.
        node = tree.pop(path, None)
        if node is not None and node.type == "dir":
            for p in [p for p in tree if p.startswith(path + "/")]:
                del tree[p]

    for t in tars:
        unpacked = set()
        with tarfile.open(t, "r:*") as tf:
            for m in tf:
                path = clean(m.name)
                parent, _, base = path.rpartition("/")
                if base.startswith(WH):
                    if base == OPQ:
                        for p in list(tree):
                            if p.startswith(parent + "/" if parent else "") and p != parent and p in tree:
                                if p not in unpacked:
                                    remove(p)
                    elif not base.startswith(WH + WH):
                        remove((parent + "/" if parent else "") + base[len(WH):])
                    continue
                meta = dict(mode=m.mode & 0o7777, uid=m.uid, gid=m.gid, mtime=mtime_ns(m))
                xa = xattrs_of(m)
                # Missing parents appear as 0755 root directories.
                acc = ""
                for comp in parent.split("/") if parent else []:
                    acc = acc + "/" + comp if acc else comp
                    if acc not in tree:
                        tree[acc] = Inode(type="dir", mode=0o755, uid=0, gid=0, mtime=None, xattrs={})
                        unpacked.add(acc)
                old = tree.get(path)
                unpacked.add(path)
                if m.isdir():
                    if old is not None and old.type == "dir":
                        # Contents stay; metadata and xattrs are the header's alone.
                        old.__dict__.update(meta)
                        old.xattrs = xa
                        continue
                    if old is not None:
                        remove(path)
                    tree[path] = Inode(type="dir", xattrs=xa, **meta)
                    continue
                if m.islnk():
                    target = tree[clean(m.linkname)]
                    if old is not None and old is not target:
                        remove(path)
                    target.__dict__.update(meta)
                    # containerd chowns the link, which drops the inode's capability.
                    target.xattrs.pop("security.capability", None)
                    target.xattrs.update(xa)
                    if target.type == "symlink":
                        target.mode = 0o777
                    tree[path] = target
                    continue
                if old is not None:
                    remove(path)
                if m.isreg():
                    h = hashlib.sha256()
                    f = tf.extractfile(m)
                    while True:
                        b = f.read(1 << 20)
                        if not b:
                            break
                        h.update(b)
                    node = Inode(type="file", size=m.size, sha256=h.hexdigest(), xattrs=xa, **meta)
                elif m.issym():
                    node = Inode(type="symlink", link=m.linkname, xattrs=xa, **meta)
                    node.mode = 0o777
                elif m.ischr() or m.isblk():
                    node = Inode(type="chr" if m.ischr() else "blk", rdev=[m.devmajor, m.devminor], xattrs=xa, **meta)
                elif m.isfifo():
                    node = Inode(type="fifo", xattrs=xa, **meta)
                else:
                    continue
                tree[path] = node
    return tree


def walk(root):
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        if rel == "" and "lost+found" in dirnames:
            dirnames.remove("lost+found")
        names = [rel] if rel == "" else []
        names += [os.path.join(rel, n) if rel else n for n in dirnames + filenames]
        for p in names:
            full = os.path.join(root, p) if p else root
            st = os.lstat(full)
            xa = {}
            for k in os.listxattr(full, follow_symlinks=False):
                xa[k] = os.getxattr(full, k, follow_symlinks=False).hex()
            meta = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime=st.st_mtime_ns, xattrs=xa)
            if stat.S_ISDIR(st.st_mode):
                node = Inode(type="dir", **meta)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    while True:
                        b = f.read(1 << 20)
                        if not b:
                            break
                        h.update(b)
                node = Inode(type="file", size=st.st_size, sha256=h.hexdigest(), **meta)
            elif stat.S_ISLNK(st.st_mode):
                node = Inode(type="symlink", link=os.readlink(full), **meta)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                node = Inode(type="chr" if stat.S_ISCHR(st.st_mode) else "blk",
                             rdev=[os.major(st.st_rdev), os.minor(st.st_rdev)], **meta)
            elif stat.S_ISFIFO(st.st_mode):
                node = Inode(type="fifo", **meta)
            else:
                node = Inode(type="other", **meta)
            node.ino = st.st_ino
            tree[p] = node
    return tree


def emit(tree, by_ino):
    out = {}
    groups = {}
    for p, n in tree.items():
        d = n.node()
        key = d.pop("ino", None) if by_ino else id(n)
        if d["mtime"] is not None:
            d["mtime"] = str(d["mtime"])  # nanoseconds: past what a JSON number holds exactly
        if d["type"] != "dir":
            groups.setdefault(key, []).append(p)
        out[p] = d
    links = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    json.dump({"tree": out, "links": links}, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    if sys.argv[1] == "model":
        emit(model(sys.argv[2:]), False)
    else:
        emit(walk(sys.argv[2]), True)
