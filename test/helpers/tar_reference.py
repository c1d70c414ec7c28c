"""Prints each member of a tar as JSON lines, read by Python's tarfile: the
independent reference that test/archive.test.ts compares tar_dump with.
Names are raw bytes (hex); the test cleans them itself. Data is hashed with
FNV-1a 64 over the stored bytes (a sparse file's segments back to back)."""
import base64
import json
import sys
import tarfile
import urllib.parse
from decimal import Decimal

FNV_OFFSET, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv(h, data):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def raw(s):
    return s.encode("utf-8", "surrogateescape")


def kind(ti):
    if ti.islnk():
        return "hardlink"
    if ti.issym():
        return "symlink"
    if ti.ischr():
        return "chardev"
    if ti.isblk():
        return "blockdev"
    if ti.isdir():
        return "dir"
    if ti.isfifo():
        return "fifo"
    return "file"


def mtime(ti):
    text = ti.pax_headers.get("mtime")
    if text is None:
        return int(ti.mtime), 0
    d = Decimal(text)
    sec = int(d.to_integral_value(rounding="ROUND_FLOOR"))
    return sec, int((d - sec) * 1_000_000_000)


def xattrs(ti):
    out = []
    for k, v in ti.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            out.append([k[len("SCHILY.xattr."):], raw(v).hex()])
        elif k.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(k[len("LIBARCHIVE.xattr."):])
            out.append([name, base64.b64decode(v + "=" * (-len(v) % 4)).hex()])
    # One entry per name, the last value winning, in first-seen order.
    merged = {}
    for name, value in out:
        merged[name] = value
    return [[k, v] for k, v in merged.items()]


def main():
    with tarfile.open(sys.argv[1], "r:*", errors="surrogateescape") as tf:
        for ti in tf:
            t = kind(ti)
            h, count = FNV_OFFSET, 0
            sparse = None
            if ti.isreg():
                f = tf.extractfile(ti)
                if ti.sparse is not None:
                    sparse = [[o, n] for o, n in ti.sparse if n]
                    if not sparse:
                        sparse = [[ti.size, 0]]
                    ranges = [(o, n) for o, n in ti.sparse]
                else:
                    ranges = [(0, ti.size)]
                for off, n in ranges:
                    f.seek(off)
                    while n:
                        chunk = f.read(min(n, 1 << 20))
                        h = fnv(h, chunk)
                        count += len(chunk)
                        n -= len(chunk)
            sec, nsec = mtime(ti)
            print(json.dumps({
                "type": t,
                "name_hex": raw(ti.name).hex(),
                "link_hex": raw(ti.linkname).hex(),
                "mode": ti.mode & 0o7777,
                "uid": ti.uid,
                "gid": ti.gid,
                "mtime_sec": sec,
                "mtime_nsec": nsec,
                "size": ti.size if t == "file" else 0,
                "devmajor": ti.devmajor if t in ("chardev", "blockdev") else 0,
                "devminor": ti.devminor if t in ("chardev", "blockdev") else 0,
                "data_offset": ti.offset_data,
                "xattrs": xattrs(ti),
                "sparse": sparse or [],
                "data_bytes": count,
                "data_fnv": "%016x" % h,
            }))


main()
