"""Layer tars from successive states of one root filesystem, for the scale
image (test/helpers/scale-image.ts), run from mmdebstrap hooks:

  scale_layers.py diff ROOT STATE OUT_TAR

walks ROOT (not into other mounts, nor into apt's lists and package cache),
compares each path's stat with STATE (the previous walk, a JSON file; none
the first time) and writes OUT_TAR (pax) holding what is new or changed, and
an OCI whiteout for each path gone (the topmost only); then rewrites STATE.
An inode's ctime changes with any change to it (content, mode, a new hard
link), so comparing ctime finds every changed path. Mtimes are whole seconds
in the tar, so the expected tree has no sub-second rounding to argue about.
"""
import json
import os
import stat
import sys
import tarfile

SKIP_CONTENT = {"var/lib/apt/lists", "var/cache/apt", "proc", "sys"}


def walk(root):
    dev = os.lstat(root).st_dev
    out = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            r = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(root, r))
            out[r] = [st.st_mode, st.st_uid, st.st_gid, st.st_size, int(st.st_mtime), st.st_ctime_ns, st.st_ino, st.st_rdev]
            if stat.S_ISDIR(st.st_mode) and st.st_dev == dev and r not in SKIP_CONTENT:
                stack.append(r)
    return out


def main():
    _, cmd, root, state_file, out_tar = sys.argv
    assert cmd == "diff", cmd
    prev = {}
    if os.path.exists(state_file):
        with open(state_file) as f:
            prev = json.load(f)
    cur = walk(root)
    changed = sorted(p for p, s in cur.items() if prev.get(p) != s)
    gone = sorted(p for p in prev if p not in cur)
    gone_set = set(gone)
    top_gone = [p for p in gone if p.rpartition("/")[0] not in gone_set]
    with tarfile.open(out_tar + ".tmp", "w", format=tarfile.PAX_FORMAT) as tf:
        for p in changed:
            ti = tf.gettarinfo(os.path.join(root, p), arcname=p)
            ti.mtime = int(ti.mtime)
            ti.uname = ti.gname = ""
            if ti.isreg():
                with open(os.path.join(root, p), "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
        for p in top_gone:
            parent, _, base = p.rpartition("/")
            ti = tarfile.TarInfo(f"{parent}/.wh.{base}" if parent else f".wh.{base}")
            ti.mtime = 0
            tf.addfile(ti)
    os.rename(out_tar + ".tmp", out_tar)
    with open(state_file + ".tmp", "w") as f:
        json.dump(cur, f)
    os.rename(state_file + ".tmp", state_file)
    print(f"{out_tar}: {len(changed)} changed, {len(top_gone)} whiteouts", file=sys.stderr)


main()
