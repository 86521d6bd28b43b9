#!/usr/bin/env python3
"""Whether `cutover serve` keeps its memory flat under hours of traffic (issue 28).

Starts `cutover serve` on loopback with the rollout running (not held), sends it a fixed
rate of the bundled card-fraud traffic for the whole soak with the repository's open-loop
driver (`loadgen/examples/fixed_rate.rs`), and reads the process's resident memory
(VmRSS) every `--sample-s` seconds. Prints a Markdown table of the samples and the growth
from the end of the warm-up (`--warmup-min`, 10 minutes unless set) to the end, and writes
every sample to `--csv`. Not part of the test suite: a soak takes hours.

    cargo build --release --bin cutover --example fixed_rate -p cutover-loadgen -p cutover
    scripts/soak.py --hours 2 --rate 300            # about 2 h 5 min

Standard library only.
"""

import argparse
import csv
import os
import signal
import subprocess
import sys
import time

from hostile_figures import rss_kib  # the same reading of /proc/PID/status


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", default="target/release/cutover")
    p.add_argument("--driver", default="target/release/examples/fixed_rate")
    p.add_argument("--scenario", default="scenarios/live/clean-promotes.toml")
    p.add_argument("--hours", type=float, default=2.0)
    p.add_argument("--rate", type=float, default=300.0)
    p.add_argument("--sample-s", type=float, default=60.0)
    p.add_argument("--warmup-min", type=float, default=10.0)
    p.add_argument("--csv", default="target/soak.csv")
    p.add_argument("--state", help="serve with --state DIR (the folder must not exist yet)")
    a = p.parse_args()
    for path in (a.binary, a.driver):
        if not os.path.exists(path):
            sys.exit(f"soak: {path}: not built (see the usage at the top of this script)")
    seconds = a.hours * 3600
    if not (0 < seconds <= 86400 and 0 < a.rate <= 5000):
        sys.exit("soak: --hours within (0, 24], --rate within (0, 5000]")
    command = [a.binary, "serve", "--scenario", a.scenario, "--token", "soak-token-0123456789abcdef"]
    if a.state:
        command += ["--state", a.state]
    serve = subprocess.Popen(
        command,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    router = None
    for _ in range(10):
        line = serve.stdout.readline()
        if line.startswith("router"):
            router = line.split()[1]
            break
    if router is None:
        serve.kill()
        sys.exit("soak: serve did not print its address")
    driver = subprocess.Popen([a.driver, router, str(a.rate), str(seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    began = time.monotonic()
    samples = []
    out = open(a.csv, "w", newline="")  # written as the soak goes: a cut-off soak keeps its samples
    w = csv.writer(out)
    w.writerow(["elapsed_s", "rss_kib"])

    def sample():
        samples.append((time.monotonic() - began, rss_kib(serve.pid)))
        w.writerow((f"{samples[-1][0]:.0f}", samples[-1][1]))
        out.flush()

    try:
        while driver.poll() is None:
            sample()
            time.sleep(a.sample_s)
        sample()
    finally:
        out.close()
        if driver.poll() is None:
            driver.kill()
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
    load = driver.stdout.read().strip()
    warm = next((r for t, r in samples if t >= a.warmup_min * 60), samples[-1][1])
    peak = max(r for _, r in samples)
    print(f"load: {load}")
    print()
    print("| elapsed | RSS |")
    print("|---|---|")
    step = max(1, len(samples) // 12)
    for t, r in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(f"| {t / 60:.0f} min | {r / 1024:.1f} MiB |")
    print()
    print(f"after the {a.warmup_min:.0f}-minute warm-up: {warm / 1024:.1f} MiB; at the end: "
          f"{samples[-1][1] / 1024:.1f} MiB; growth {(samples[-1][1] - warm) / 1024:+.1f} MiB; peak {peak / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
