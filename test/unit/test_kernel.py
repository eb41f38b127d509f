"""Pure parts of tcr.kernel: loop ioctl structs, device names, exit codes."""

import os
import struct

from tcr.kernel import loopdev, pidfd


def test_loop_struct_sizes_match_the_kernel_abi():
    assert loopdev.INFO64_SIZE == 232
    assert loopdev.CONFIG_SIZE == 304
    assert len(loopdev.pack_config(5, loopdev.LO_FLAGS_READ_ONLY | loopdev.LO_FLAGS_AUTOCLEAR)) == 304


def test_loop_config_layout():
    buf = loopdev.pack_config(7, loopdev.LO_FLAGS_READ_ONLY | loopdev.LO_FLAGS_AUTOCLEAR, "/x/image.sqfs")
    fd, block_size = struct.unpack_from("=II", buf)
    assert (fd, block_size) == (7, 0)
    info = buf[8:8 + 232]
    assert loopdev.unpack_info64_flags(info) == 5
    assert info[56:56 + 13] == b"/x/image.sqfs"  # lo_file_name after 5 u64 + 4 u32
    assert buf[8 + 232:] == bytes(64)


def test_long_file_names_are_truncated():
    info = loopdev.pack_info64(0, "/" + "a" * 200)
    assert len(info) == 232 and info[56 + 63] == 0


def test_number_of():
    assert loopdev.number_of("/dev/loop12") == 12
    assert loopdev.number_of("/dev/sda1") is None
    assert loopdev.number_of("loopback") is None


def test_exit_codes():
    assert pidfd.code_from_siginfo(os.CLD_EXITED, 3) == 3
    assert pidfd.code_from_siginfo(os.CLD_KILLED, 9) == 137
    assert pidfd.code_from_siginfo(os.CLD_DUMPED, 11) == 139
    assert pidfd.code_from_status(3 << 8) == 3
    assert pidfd.code_from_status(15) == 143
