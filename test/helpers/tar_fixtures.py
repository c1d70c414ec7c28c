"""Writes the hand-made tar archives of test/archive.test.ts into OUTDIR:
valid corner cases (read back by Python's tarfile as the reference) under
ok/, and broken ones under bad/ named <expected error code>.<case>.tar.
Headers are built here byte by byte where tarfile cannot make them."""
import io
import os
import sys
import tarfile

BLOCK = 512


def octal(n, width):
    return b"%0*o\0" % (width - 1, n)


def base256(n, width):
    """GNU/star base-256: high bit set, big-endian two's complement."""
    n &= (1 << (8 * width)) - 1
    b = bytearray(n.to_bytes(width, "big"))
    b[0] |= 0x80
    return bytes(b)


def header(name, size=0, typeflag=b"0", mode=0o644, uid=0, gid=0, mtime=1700000000, link=b"",
           magic=b"ustar\x0000", devmajor=0, devminor=0, prefix=b"", raw=None, signed=False):
    """One header block. `raw` maps offset -> bytes patched in before the checksum."""
    h = bytearray(BLOCK)

    def put(off, data):
        h[off:off + len(data)] = data

    put(0, name if isinstance(name, bytes) else name.encode())
    put(100, octal(mode, 8))
    put(108, octal(uid, 8))
    put(116, octal(gid, 8))
    put(124, size if isinstance(size, bytes) else octal(size, 12))
    put(136, mtime if isinstance(mtime, bytes) else octal(mtime, 12))
    put(156, typeflag)
    put(157, link)
    put(257, magic)
    put(329, octal(devmajor, 8))
    put(337, octal(devminor, 8))
    put(345, prefix)
    for off, data in (raw or {}).items():
        put(off, data)
    put(148, b" " * 8)
    s = sum((b - 256 if b > 127 else b) for b in h) if signed else sum(h)
    put(148, b"%06o\0 " % (s & 0o777777))
    return bytes(h)


def pad(data):
    return data + b"\0" * (-len(data) % BLOCK)


def pax_records(items):
    out = b""
    for k, v in items:
        k = k if isinstance(k, bytes) else k.encode()
        v = v if isinstance(v, bytes) else v.encode()
        body = b" " + k + b"=" + v + b"\n"
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode() + body
    return out


def pax(items, typeflag=b"x", data=None):
    data = pax_records(items) if data is None else data
    return header(b"PaxHeaders/x", len(data), typeflag) + pad(data)


def entry(name, data=b"", **kw):
    return header(name, len(data), **kw) + pad(data)


END = b"\0" * (2 * BLOCK)


def write(path, blob):
    with open(path, "wb") as f:
        f.write(blob)


def tarfile_bytes(fmt, build, **kw):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kw) as tf:
        build(tf)
    return buf.getvalue()


def add(tf, name, data=b"", **attrs):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1700000000
    for k, v in attrs.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if data else None)


def ok_cases(d):
    def pax_misc(tf):
        add(tf, "ns.txt", b"nanoseconds", pax_headers={"mtime": "1700000000.123456789"})
        add(tf, "neg.txt", b"before 1970", pax_headers={"mtime": "-1.25"})
        add(tf, "xattr.txt", b"x", pax_headers={
            "SCHILY.xattr.user.plain": "value",
            "LIBARCHIVE.xattr.user.caf%C3%A9": "AAFiaW4",
            "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
        })
        add(tf, "header-name", b"renamed", pax_headers={"path": "real/name.txt"})
        add(tf, "bigid", b"", uid=4000000000, gid=3000000)
        add(tf, "chr", type=tarfile.CHRTYPE, devmajor=10, devminor=200)
        add(tf, "blk", type=tarfile.BLKTYPE, devmajor=259, devminor=65536)
        add(tf, "fifo", type=tarfile.FIFOTYPE)
        add(tf, "contig", b"contiguous file", type=tarfile.CONTTYPE)
        add(tf, "modes", b"", mode=0o7755)
    write(os.path.join(d, "pax-misc.tar"), tarfile_bytes(tarfile.PAX_FORMAT, pax_misc, pax_headers={
        "uid": "4242", "SCHILY.xattr.user.global": "g", "comment": "global header"}))

    long_dir = "d" * 90 + "/" + "e" * 90 + "/" + "f" * 90
    def gnu_misc(tf):
        add(tf, long_dir + "/long-file.txt", b"long name", uid=3000000, gid=2097152)
        add(tf, "negative-mtime", b"old", mtime=-123456789)
        add(tf, "link-to-long", type=tarfile.LNKTYPE, linkname=long_dir + "/long-file.txt")
        add(tf, "sym-to-long", type=tarfile.SYMTYPE, linkname="../" * 50 + "target")
    write(os.path.join(d, "gnu-misc.tar"), tarfile_bytes(tarfile.GNU_FORMAT, gnu_misc))

    # Base-256 size and mtime where octal would do, and a negative uid-free
    # mtime, in old GNU headers.
    gnu = b"ustar  \0"
    write(os.path.join(d, "base256.tar"),
          header("b256", base256(10, 12), mtime=base256(-5, 12), magic=gnu) + pad(b"0123456789") +
          header("b256-big-mtime", base256(3, 12), mtime=base256(1 << 40, 12), magic=gnu) + pad(b"abc") + END)

    # v7: no magic; a regular file with typeflag NUL and a directory marked
    # only by its trailing slash.
    v7 = b"\0" * 8
    write(os.path.join(d, "v7.tar"),
          entry("v7dir/", typeflag=b"\0", mode=0o755, magic=v7) +
          entry("v7dir/file", b"v7 data", typeflag=b"\0", magic=v7) + END)

    # Octal fields padded with leading spaces and trailing NULs/spaces, and a
    # checksum that only matches as a signed sum (name bytes >= 0x80).
    write(os.path.join(d, "odd-fields.tar"),
          entry("spaces", b"12345", raw={100: b"   644 \0", 108: b"  17\0\0\0\0", 116: b"  21  \0\0"}) +
          entry(b"signed-\xe9\xff", b"s", signed=True) + END)

    # Names that try to leave the root, and one that is the root.
    def traversal(tf):
        add(tf, "../../etc/x", b"x")
        add(tf, "/abs/y", b"y")
        add(tf, "a/./b//c/", type=tarfile.DIRTYPE)
        add(tf, "./", type=tarfile.DIRTYPE)
        add(tf, "..", type=tarfile.DIRTYPE)
        add(tf, "hard", type=tarfile.LNKTYPE, linkname="../../etc/x")
        add(tf, "sym", type=tarfile.SYMTYPE, linkname="../../../etc/shadow")
        add(tf, "./.wh.gone", b"")
    write(os.path.join(d, "traversal.tar"), tarfile_bytes(tarfile.PAX_FORMAT, traversal))

    # Old GNU sparse written by hand with a map that needs an extension block.
    segs = [(i * 8192, 512) for i in range(30)]
    stored = b"".join(bytes([65 + i % 26]) * n for i, (_, n) in enumerate(segs))
    realsize = 30 * 8192
    raw = {}
    for i, (o, n) in enumerate(segs[:4]):
        raw[386 + 24 * i] = octal(o, 12) + octal(n, 12)
    raw[482] = b"\1"
    raw[483] = octal(realsize, 12)
    ext = bytearray(BLOCK)
    for i, (o, n) in enumerate(segs[4:25]):
        ext[24 * i:24 * i + 24] = octal(o, 12) + octal(n, 12)
    ext[504] = 1
    ext2 = bytearray(BLOCK)
    for i, (o, n) in enumerate(segs[25:]):
        ext2[24 * i:24 * i + 24] = octal(o, 12) + octal(n, 12)
    write(os.path.join(d, "gnu-sparse-ext.tar"),
          header("sparse-ext", len(stored), b"S", magic=gnu, raw=raw) + bytes(ext) + bytes(ext2) + pad(stored) + END)


def star_cases(d):
    """star: a 131-byte prefix, then atime and ctime, and "tar\\0" at 508.
    Python reads these as ustar (prefix through atime), so they are checked
    against fixed expectations instead."""
    raw = {476: octal(1600000000, 12), 488: octal(1600000001, 12), 508: b"tar\0"}
    write(os.path.join(d, "star.tar"),
          entry("name-in-star", b"star", prefix=b"s" * 131, raw=raw) +
          entry("no-prefix", b"", raw=raw) + END)


def bad_cases(d):
    cases = {}
    good = entry("good.txt", b"fine")
    blk = bytearray(entry("bad-checksum.txt", b"data"))
    blk[0] ^= 0x20
    cases["TAR_BAD_HEADER.checksum"] = good + bytes(blk) + END
    cases["TAR_BAD_HEADER.pax-overrun"] = pax([], data=b"99 path=short\n") + entry("f") + END
    cases["TAR_BAD_HEADER.pax-no-equals"] = pax([], data=b"12 pathname\n") + entry("f") + END
    cases["TAR_BAD_HEADER.pax-huge"] = header("PaxHeaders/huge", base256(1 << 40, 12), b"x") + END
    cases["TAR_BAD_HEADER.longname-huge"] = header("././@LongLink", 2 << 20, b"L") + END
    cases["TAR_BAD_HEADER.size-overflow"] = header("big", b"\x80" + b"\xff" * 11) + END
    cases["TAR_BAD_HEADER.size-negative"] = header("neg", base256(-1, 12)) + END
    cases["TAR_BAD_HEADER.size-not-octal"] = header("bad", b"12345678x\0\0\0") + END
    cases["TAR_BAD_HEADER.pax-size-overflow"] = pax([("size", "18446744073709551616")]) + entry("f") + END
    cases["TAR_BAD_HEADER.pax-uid-32bit"] = pax([("uid", "4294967296")]) + entry("f") + END
    cases["TAR_BAD_HEADER.pax-mtime"] = pax([("mtime", "12x")]) + entry("f") + END
    cases["TAR_TRUNCATED.size-8g"] = header("huge", 0o77777777777) + b"x" * 4096
    cases["TAR_TRUNCATED.size-base256-4e"] = header("huge", base256(1 << 62, 12)) + b"x" * 1000
    cases["TAR_TRUNCATED.pax-then-eof"] = pax([("path", "lost")])
    cases["TAR_TRUNCATED.half-header"] = good + entry("cut")[:300]
    cases["TAR_BAD_HEADER.zero-then-data"] = good + b"\0" * BLOCK + entry("after-zero") + END
    cases["TAR_BAD_HEADER.type-multivolume"] = entry("mv", b"", typeflag=b"M") + END
    cases["TAR_BAD_HEADER.devmajor"] = entry("dev", typeflag=b"3", raw={329: b"9999999\0"}) + END
    cases["TAR_UNSAFE_PATH.nul-in-path"] = pax([("path", b"a\0b")]) + entry("f") + END
    cases["TAR_BAD_HEADER.hardlink-root"] = entry("hl", typeflag=b"1", link=b"../..") + END

    def sparse01(m, realsize, data):
        return (pax([("GNU.sparse.size", str(realsize)), ("GNU.sparse.map", m)]) +
                entry("sp", data) + END)
    cases["TAR_BAD_HEADER.sparse-overlap"] = sparse01("0,10,5,10", 100, b"x" * 20)
    cases["TAR_BAD_HEADER.sparse-backwards"] = sparse01("50,10,0,10", 100, b"x" * 20)
    cases["TAR_BAD_HEADER.sparse-past-realsize"] = sparse01("0,10,95,10", 100, b"x" * 20)
    cases["TAR_BAD_HEADER.sparse-stored-mismatch"] = sparse01("0,10,50,10", 100, b"x" * 25)
    cases["TAR_BAD_HEADER.sparse-odd-map"] = sparse01("0,10,50", 100, b"x" * 10)
    cases["TAR_BAD_HEADER.sparse00-order"] = (pax([("GNU.sparse.size", "100"), ("GNU.sparse.numbytes", "5")]) +
                                             entry("sp", b"x" * 5) + END)
    sp10 = [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.realsize", "100"),
            ("GNU.sparse.name", "sp")]
    cases["TAR_BAD_HEADER.sparse10-count"] = pax(sp10) + entry("GNUSparseFile.0/sp", pad(b"99999999\n")) + END
    cases["TAR_BAD_HEADER.sparse10-map-past-data"] = (pax(sp10) + entry("GNUSparseFile.0/sp", b"3\n0\n1\n") + END)
    cases["TAR_BAD_HEADER.sparse10-bad-byte"] = pax(sp10) + entry("GNUSparseFile.0/sp", pad(b"1\n0\nx\n")) + END
    cases["TAR_BAD_HEADER.sparse-unknown-version"] = (pax([("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0"),
                                                           ("GNU.sparse.realsize", "10")]) + entry("sp") + END)
    ext_blocks = bytearray(BLOCK)
    ext_blocks[0:24] = octal(0, 12) + octal(100, 12)
    ext_blocks[24:48] = octal(50, 12) + octal(100, 12)
    raw = {386: octal(0, 12) + octal(10, 12), 482: b"\1", 483: octal(1000, 12)}
    cases["TAR_BAD_HEADER.gnu-sparse-overlap"] = (header("s", 210, b"S", magic=b"ustar  \0", raw=raw) +
                                                  bytes(ext_blocks) + pad(b"x" * 210) + END)
    cases["TAR_TRUNCATED.gnu-sparse-ext-eof"] = header("s", 10, b"S", magic=b"ustar  \0", raw=raw)
    for name, blob in cases.items():
        write(os.path.join(d, name + ".tar"), blob)


def main():
    out = sys.argv[1]
    for sub in ("ok", "bad", "star"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    ok_cases(os.path.join(out, "ok"))
    star_cases(os.path.join(out, "star"))
    bad_cases(os.path.join(out, "bad"))


main()
