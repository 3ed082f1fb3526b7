"""Seeds for the `frames` fuzz target: the frames of real pcap captures in its input format
(src/fuzzing.rs `frames`): an options byte, then per frame a 2-byte big-endian length, a
signed time step in milliseconds and the frame bytes.

    python3 fuzz/seeds.py OUT_DIR CAPTURE.pcap...

Only classic pcap files of the link types the target builds (Ethernet, raw IP, Linux SLL and
SLL2) are converted; frames past 64 KiB of input are left out (the fuzzer's -max_len).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

LINKTYPES = {1: 0, 101: 1, 113: 2, 276: 3}
FIT_IP_LENGTH = 0x10
MAX_FLOWS_4 = 3 << 5
LIMIT = 65536


def convert(data: bytes) -> bytes | None:
    if len(data) < 24:
        return None
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
             b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None:
        return None
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0xFFFF
    if linktype not in LINKTYPES:
        return None
    out = bytearray([LINKTYPES[linktype] | FIT_IP_LENGTH | MAX_FLOWS_4])
    at, last_ms = 24, None
    while at + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(order + "IIII", data, at)
        frame = data[at + 16: at + 16 + incl]
        at += 16 + incl
        ms = sec * 1000 + (frac // 1_000_000 if nano else frac // 1000)
        step = 0 if last_ms is None else max(-128, min(127, ms - last_ms))
        last_ms = ms
        if len(out) + 3 + len(frame) > LIMIT:
            break
        out += struct.pack(">Hb", len(frame), step) + frame
    return bytes(out)


def main() -> None:
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[2:]:
        seed = convert(Path(name).read_bytes())
        if seed is not None:
            (out_dir / (Path(name).name + ".frames")).write_bytes(seed)


if __name__ == "__main__":
    main()
