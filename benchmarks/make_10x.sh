#!/usr/bin/env bash
# Build the 10x benchmark capture (about 10M packets, 4.2 GB) from an existing 1M one,
# the way ../shared/bench/make_bench_pcap.sh does with MAKE_10X=1 but without
# re-recording: copy k (0..9) has its addresses moved to 10.77.<k>.0/24 (4-tuples stay
# unique) and its clock shifted by k * (duration + 10 s); the copies are concatenated.
# Needs tcpreplay (tcprewrite) and wireshark-common (capinfos, editcap, mergecap).
# Usage: benchmarks/make_10x.sh [IN.pcap] [OUT.pcap]
set -euo pipefail
IN=${1:-benchmarks/data/bench.pcap}
OUT=${2:-benchmarks/data/bench10m.pcap}
WORK=$(mktemp -d "$(dirname "$OUT")/work10x.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
dur=$(capinfos -u -M "$IN" | awk -F': *' '/Capture duration/{print $2+0}')
step=$(python3 -c "import math; print(math.ceil($dur) + 10)")
parts=()
for k in $(seq 0 9); do
  part="$WORK/part$k.pcap"
  if [ "$k" = 0 ]; then cp "$IN" "$part"
  else
    tcprewrite --pnat=10.77.0.0/24:10.77.$k.0/24 --fixcsum -i "$IN" -o "$WORK/nat.pcap"
    editcap -t $((k * step)) "$WORK/nat.pcap" "$part"
    rm -f "$WORK/nat.pcap"
  fi
  parts+=("$part")
done
mergecap -a -F pcap -w "$OUT" "${parts[@]}"
capinfos -c -s "$OUT"
