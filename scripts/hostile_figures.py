#!/usr/bin/env python3
"""What `cutover serve` holds under hostile clients, measured (standard library only).

For each connection cap asked for, starts `cutover serve` on loopback, reads the process's
resident memory, opens cap + 100 connections that each send half a request's headers (the
slow-loris pattern) and reads it again; counts how many the router keeps open (the rest
are closed at accept); waits for the header deadline to close them; then opens one
stalled body and sends Ctrl-C, timing how long the process takes to exit (bounded by the
drain deadline). Prints one Markdown table row per cap.

    scripts/hostile_figures.py [--binary target/release/cutover] [--caps 256,1024,4096]
"""

import argparse
import os
import signal
import socket
import subprocess
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def still_open(s):
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def measure(binary, cap, header_s, drain_s):
    p = subprocess.Popen(
        [binary, "serve", "--scenario", "scenarios/live/clean-promotes.toml", "--hold", "--max-connections", str(cap), "--header-timeout-s", str(header_s),
         "--drain-s", str(drain_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = p.stdout.readline().split()[1]
    host, port = url.removeprefix("http://").split(":")
    time.sleep(0.5)
    before = rss_kib(p.pid)
    conns = []
    for _ in range(cap + 100):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Le")
        conns.append(s)
    time.sleep(1.0)
    held = sum(still_open(s) for s in conns)
    during = rss_kib(p.pid)
    began = time.time()
    while any(still_open(s) for s in conns) and time.time() - began < header_s + 10:
        time.sleep(0.1)
    closed_after = time.time() - began + 1.0
    for s in conns:
        s.close()
    stalled = socket.create_connection((host, int(port)))
    stalled.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    time.sleep(0.3)
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    p.wait(timeout=drain_s + 30)
    exit_s = time.time() - t0
    stalled.close()
    return held, before, during, closed_after, exit_s, p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/cutover")
    ap.add_argument("--caps", default="256,1024,4096")
    ap.add_argument("--header-s", type=float, default=10.0)
    ap.add_argument("--drain-s", type=float, default=10.0)
    a = ap.parse_args()
    print(f"| cap | half-sent connections opened | held open | RSS idle | RSS holding them | per connection "
          f"| all closed after (header deadline {a.header_s:g} s) | exit after Ctrl-C, one stalled body "
          f"(drain {a.drain_s:g} s) |")
    print("|---|---|---|---|---|---|---|---|")
    for cap in [int(c) for c in a.caps.split(",")]:
        held, before, during, closed, exit_s, rc = measure(a.binary, cap, a.header_s, a.drain_s)
        per = (during - before) / max(held, 1)
        print(f"| {cap} | {cap + 100} | {held} | {before / 1024:.1f} MiB | {during / 1024:.1f} MiB | {per:.1f} KiB "
              f"| {closed:.1f} s | {exit_s:.1f} s (exit {rc}) |")


if __name__ == "__main__":
    main()
