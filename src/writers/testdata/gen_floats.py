"""Expected float texts for floats.rs: `bits orjson repr json.dumps` per line.

Run with the reference venv: python gen_floats.py COUNT SEED > floats.txt
"""

import json
import math
import random
import struct
import sys

import orjson


def cases(count: int, rng: random.Random) -> list[float]:
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 2.2250738585072014e-308,
              1.7976931348623157e308, 0.1, 0.3, 1 / 3, 2 / 3, 100.0, 1e15, 9999999999999998.0,
              123456789012345.67, 1700000000.1234567, 1795317894.519647, 0.046, 151.122]
    for k in range(-325, 309):
        p = float(f"1e{k}")
        values += [p, math.nextafter(p, 0.0), math.nextafter(p, math.inf), -p]
    per_kind = max(1, (count - len(values)) // 4)
    for _ in range(per_kind):  # random bit patterns
        v = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        values.append(v)
    for _ in range(per_kind):  # decimal-ish: n / 10^k
        values.append(rng.randrange(1, 10**rng.randrange(1, 18)) / 10 ** rng.randrange(0, 12))
    for _ in range(per_kind):  # integer-valued
        values.append(float(rng.randrange(0, 2**rng.randrange(1, 70))))
    for _ in range(per_kind):  # epoch timestamps and millisecond durations
        values.append(rng.randrange(10**17, 2 * 10**18) / 1e9)
        values.append(round(rng.random() * 10 ** rng.randrange(-3, 7), 3))
    return values


def main() -> None:
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    values = cases(count, rng)
    if count < len(values):
        values = values[:50] + rng.sample(values[50:], count - 50)
    for v in values:
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
        print(f"{bits:016x} {orjson.dumps(v).decode()} {v!r} {json.dumps(v)}")


main()
