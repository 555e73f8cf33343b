"""A minimal static Linux executable, assembled here byte by byte.

The program is one PT_LOAD segment holding the ELF header, the program
header, a few instructions and a message. It makes two system calls,
write(1, message, length) and exit(0), and needs no libc, no loader and no
other file: the smallest thing that can run as a container's process.
"""

import struct

from knarr.errors import InvalidArgument

__all__ = ["static_writer", "MACHINES"]

_BASE = 0x400000
_EHDR_SIZE, _PHDR_SIZE = 64, 56
_EM = {"x86_64": 0x3E, "aarch64": 0xB7}
MACHINES = tuple(_EM)


def _x86_64(message_offset: int, length: int) -> bytes:
    """write(1, msg, len); exit(0). `message_offset` counts from the code's start."""
    code = b"\xb8\x01\x00\x00\x00"             # mov eax, 1 (write)
    code += b"\xbf\x01\x00\x00\x00"            # mov edi, 1 (stdout)
    lea_end = len(code) + 7
    code += b"\x48\x8d\x35" + struct.pack("<i", message_offset - lea_end)  # lea rsi, [rip+d]
    code += b"\xba" + struct.pack("<I", length)  # mov edx, length
    code += b"\x0f\x05"                        # syscall
    code += b"\xb8\x3c\x00\x00\x00"            # mov eax, 60 (exit)
    code += b"\x31\xff"                        # xor edi, edi
    code += b"\x0f\x05"                        # syscall
    return code


_X86_64_SIZE = len(_x86_64(0, 0))


def _aarch64(message_offset: int, length: int) -> bytes:
    """The same two calls for arm64: x8 holds the call number, svc #0 makes it."""
    if length >= 1 << 16:
        raise InvalidArgument(f"elf: message of {length} bytes is too long for one movz")

    def movz(reg: int, imm: int) -> int:
        return 0xD2800000 | (imm << 5) | reg

    adr_at = 4
    rel = message_offset - adr_at
    adr = ((rel & 3) << 29) | (0b10000 << 24) | ((rel >> 2) << 5) | 1  # adr x1, message
    words = [movz(0, 1), adr, movz(2, length), movz(8, 64), 0xD4000001,  # write
             movz(0, 0), movz(8, 93), 0xD4000001]                        # exit
    return struct.pack("<8I", *words)


_AARCH64_SIZE = 32
_CODE = {"x86_64": (_x86_64, _X86_64_SIZE), "aarch64": (_aarch64, _AARCH64_SIZE)}


def static_writer(message: bytes, machine: str = "x86_64") -> bytes:
    """An ELF executable for `machine` that writes `message` to stdout and exits 0."""
    if machine not in _CODE:
        raise InvalidArgument(f"elf: no code for machine {machine!r} (have {MACHINES})",
                              machine=machine)
    assemble, code_size = _CODE[machine]
    code = assemble(code_size, len(message))
    body = code + message
    total = _EHDR_SIZE + _PHDR_SIZE + len(body)
    entry = _BASE + _EHDR_SIZE + _PHDR_SIZE
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, v1, SysV
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, _EM[machine], 1, entry, _EHDR_SIZE, 0, 0,
                               _EHDR_SIZE, _PHDR_SIZE, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, total, total, 0x1000)
    return ehdr + phdr + body
