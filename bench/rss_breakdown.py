#!/usr/bin/env python3
"""Splits the resident memory of a process (Linux, /proc/PID/smaps) into what holds it.

Usage: rss_breakdown.py PID  ->  one line, KiB per category:
  main-heap   glibc's main arena ([heap])
  arenas      glibc's other arenas (anonymous, 64 MiB-aligned)
  wasm-pool   wasmtime's pooling allocator: the contiguous run of mappings around its
              reservation (1 GiB or more), i.e. linear memories (copy-on-write images
              and growth), tables, instance slots
  jit         compiled wasm (the code cache's .cwasm files, executable anonymous maps)
  anon        other anonymous mappings (large malloc blocks, thread stacks, metadata)
  files       file-backed mappings (the binary, libraries)
Used by bench/soak.sh to show which part of resident memory moves during a soak.
"""
import sys

ARENA_ALIGN = 64 << 20
ORDER = ["main-heap", "arenas", "wasm-pool", "jit", "anon", "files"]


def classify(start, size_kib, perms, path):
    if path == "[heap]":
        return "main-heap"
    if path.endswith(".cwasm") or (not path and "x" in perms):
        return "jit"
    if path.startswith("/"):
        return "files"
    if path:  # [stack], [vdso], [vvar] ...
        return "anon"
    if start % ARENA_ALIGN == 0 and size_kib <= ARENA_ALIGN >> 10:
        return "arenas"
    return "anon"


def mappings(pid):
    """Yields (start, end, perms, path, rss_kib) for each mapping."""
    current = None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                path = fields[5] if len(fields) > 5 else ""
                current = [start, end, fields[1], path]
            elif fields[0] == "Rss:" and current:
                yield (*current, int(fields[1]))
                current = None


def breakdown(pid):
    maps = sorted(mappings(pid))
    # Runs of adjacent mappings; the ones holding a reservation of 1 GiB or more are
    # wasmtime's pools (slots are remapped inside the reservation, splitting it).
    in_pool = [False] * len(maps)
    run_start = 0
    for i in range(len(maps) + 1):
        if i == len(maps) or (i > run_start and maps[i][0] != maps[i - 1][1]):
            if any(m[1] - m[0] >= 1 << 30 for m in maps[run_start:i]):
                for j in range(run_start, i):
                    in_pool[j] = True
            run_start = i
    totals = dict.fromkeys(ORDER, 0)
    for (start, end, perms, path, rss), pooled in zip(maps, in_pool):
        kind = "wasm-pool" if pooled else classify(start, (end - start) >> 10, perms, path)
        totals[kind] += rss
    return totals


def main():
    totals = breakdown(sys.argv[1])
    parts = " ".join(f"{k}={v}" for k, v in totals.items())
    print(f"total={sum(totals.values())} {parts}")


if __name__ == "__main__":
    main()
