"""An experiment behind the `--resume STATE` design (docs/scale-out.md): do the frames of
the connections open at the end of run 1, replayed before run 2's files, give the records
the single run over both writes?

    editcap -F pcap -c 100000 benchmarks/data/bench.pcap /tmp/hour.pcap   # plain pcap
    python benchmarks/resume_frames_experiment.py /tmp/hour_00000_*.pcap /tmp/hour_00001_*.pcap

No `--resume` exists yet: the connections "open at the end" of run 1 are taken as those
whose record in run 1 differs from the single run's (same 4-tuple and first timestamp); their
frames from their first on are copied out of HOUR1 (plain pcap, Ethernet, IPv4/IPv6 TCP;
the experiment's own parser) into a STATE pcap, and run 2 reads STATE then HOUR2. Prints
how many records of run 1 + run 2 equal the single run's (all fields but `id` and
`previous_id`, matched by 4-tuple and first timestamp), and how many of run 2's records
would get the single run's id under the design's numbering. An experiment, not a test.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

Key = tuple[str, int, str, int]


def records(files: list[str], out: str) -> list[dict[str, Any]]:
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "tcptrace"), "analyze",
                    "-q", "-f", "jsonl", "-o", out, *files], check=True)
    with open(out) as lines:
        return [json.loads(line) for line in lines]


def tuple_of(r: dict[str, Any]) -> Key:
    return (r["client"]["ip"], r["client"]["port"], r["server"]["ip"], r["server"]["port"])


def content(r: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in r.items() if k not in ("id", "previous_id")},
                      sort_keys=True)


def frames(path: str) -> Iterator[tuple[bytes, float, frozenset[tuple[str, int]] | None]]:
    """Each record of a plain Ethernet pcap: its bytes, time, and its TCP endpoints."""
    import ipaddress

    with open(path, "rb") as f:
        header = f.read(24)
        if header[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                              b"\xa1\xb2\x3c\x4d"):
            sys.exit(f"{path}: not a plain pcap file (editcap -F pcap converts one)")
        order = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        nano = header[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        yield header, 0.0, None
        while rec := f.read(16):
            sec, frac, incl, _ = struct.unpack(order + "IIII", rec)
            data = f.read(incl)
            ts = sec + frac / (1e9 if nano else 1e6)
            ends = None
            ethertype = int.from_bytes(data[12:14], "big")
            if ethertype == 0x0800 and len(data) >= 34 and data[23] == 6:
                ihl = (data[14] & 15) * 4
                src, dst = ipaddress.ip_address(data[26:30]), ipaddress.ip_address(data[30:34])
                tcp = 14 + ihl
            elif ethertype == 0x86DD and len(data) >= 54 and data[20] == 6:
                src, dst = ipaddress.ip_address(data[22:38]), ipaddress.ip_address(data[38:54])
                tcp = 54
            else:
                yield rec + data, ts, None
                continue
            sport, dport = struct.unpack(">HH", data[tcp:tcp + 4])
            ends = frozenset({(str(src), sport), (str(dst), dport)})
            yield rec + data, ts, ends


def main() -> None:
    hour1, hour2 = sys.argv[1:3]
    with tempfile.TemporaryDirectory() as work:
        single = records([hour1, hour2], os.path.join(work, "single.jsonl"))
        run1 = records([hour1], os.path.join(work, "run1.jsonl"))
        by_key = {(tuple_of(r), r["first_ts"]): r for r in single}
        held = [r for r in run1
                if content(r) != content(by_key.get((tuple_of(r), r["first_ts"]), {}))]
        first = {frozenset({(r["client"]["ip"], r["client"]["port"]),
                            (r["server"]["ip"], r["server"]["port"])}): r["first_ts"]
                 for r in held}
        state = os.path.join(work, "state.pcap")
        carried = 0
        with open(state, "wb") as out:
            for data, ts, ends in frames(hour1):
                if ends is None and ts == 0.0 and len(data) == 24:
                    out.write(data)  # the global header
                elif ends is not None and ends in first and ts >= first[ends] - 1e-6:
                    out.write(data)
                    carried += 1
        run2 = records([state, hour2], os.path.join(work, "run2.jsonl"))
        held_ids = {r["id"] for r in held}
        joined = [r for r in run1 if r["id"] not in held_ids] + run2
        same = sum(content(r) == content(by_key.get((tuple_of(r), r["first_ts"]), {}))
                   for r in joined)
        # the ids the design gives run 2's records: the held connections theirs from run
        # 1 (the replay opens them in the order of their first segments: their ids' order),
        # then run 1's next id on
        held_sorted = sorted(held_ids)
        next_id = max(r["id"] for r in run1) + 1

        def designed(run2_id: int) -> int:
            if run2_id <= len(held_sorted):
                return held_sorted[run2_id - 1]
            return run2_id - len(held_sorted) + next_id - 1

        ids_equal = sum(designed(r["id"]) == by_key[(tuple_of(r), r["first_ts"])]["id"]
                        for r in run2 if (tuple_of(r), r["first_ts"]) in by_key)
        print(json.dumps({"single": len(single), "run1": len(run1), "held": len(held),
                          "run2_ids_as_designed": ids_equal,
                          "frames_carried": carried,
                          "state_bytes": os.path.getsize(state), "run2": len(run2),
                          "run1_plus_run2": len(joined), "equal_to_single": same}))


if __name__ == "__main__":
    main()
