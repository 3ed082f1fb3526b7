#!/usr/bin/env python3
"""Record a real nmap port scan between two network namespaces (pcaps/scan/nmap_scan.pcap).

Run as root, with nmap and tcpdump installed::

    python3 pcaps/record_scan.py

Topology: tt-scan [tt-a 10.78.0.1] <--veth--> [tt-b 10.78.0.2] tt-target, offloads off (as
pcaps/record_linux.py). In tt-target two listeners (ports 22 and 80) accept and hold
connections; every other port is closed (the kernel answers RST, RFC 9293 section
3.10.7.1). nmap scans ports 20-29,80,443 of 10.78.0.2 from tt-scan once per technique, in
this order: -sS (SYN), -sF (FIN), -sN (NULL), -sX (Xmas), -sA (ACK), -sM (Maimon), with
`-n -Pn --max-retries 1`, a fixed source port per technique (`-g`, so every probe is its own
4-tuple and runs do not share one), and tcpdump captures on tt-a. Namespaces and processes
are removed on exit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "scan" / "nmap_scan.pcap"
PORTS = "20-29,80,443"
# (nmap option, source port): one source port per technique
SCANS = [("-sS", 41001), ("-sF", 41002), ("-sN", 41003), ("-sX", 41004), ("-sA", 41005),
         ("-sM", 41006)]
LISTENER = (
    "import socket,time\n"
    "socks=[]\n"
    "for p in (22,80):\n"
    "    s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "    s.bind(('10.78.0.2',p)); s.listen(64); socks.append(s)\n"
    "time.sleep(120)\n"
)


def sh(*args: str, check: bool = True) -> None:
    subprocess.run(args, check=check)


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def cleanup() -> None:
    for ns in ("tt-scan", "tt-target"):
        sh("ip", "netns", "del", ns, check=False)


def main() -> None:
    cleanup()
    sh("ip", "netns", "add", "tt-scan")
    sh("ip", "netns", "add", "tt-target")
    sh("ip", "link", "add", "tt-a", "netns", "tt-scan", "type", "veth", "peer", "name", "tt-b",
       "netns", "tt-target")
    ends = (("tt-scan", "tt-a", "10.78.0.1/24"), ("tt-target", "tt-b", "10.78.0.2/24"))
    for ns, dev, addr in ends:
        sh(*in_ns(ns, "ip", "addr", "add", addr, "dev", dev))
        sh(*in_ns(ns, "ip", "link", "set", dev, "up"))
        sh(*in_ns(ns, "ip", "link", "set", "lo", "up"))
        sh(*in_ns(ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off",
                  "gro", "off"), check=False)
    listener = subprocess.Popen(in_ns("tt-target", sys.executable, "-c", LISTENER))
    dump = subprocess.Popen(
        in_ns("tt-scan", "tcpdump", "--immediate-mode", "-U", "-s", "0", "-Z", "root", "-w",
              str(OUT), "-i", "tt-a", "tcp"),
        stderr=subprocess.PIPE, text=True)
    try:
        assert dump.stderr is not None
        while "listening on" not in dump.stderr.readline():
            pass
        time.sleep(0.5)
        for technique, source_port in SCANS:
            sh(*in_ns("tt-scan", "nmap", technique, "-n", "-Pn", "--max-retries", "1", "-g",
                      str(source_port), "-p", PORTS, "10.78.0.2"))
            time.sleep(0.3)
        time.sleep(0.3)
    finally:
        dump.send_signal(2)
        dump.wait(timeout=10)
        listener.kill()
        listener.wait()
        cleanup()


if __name__ == "__main__":
    main()
