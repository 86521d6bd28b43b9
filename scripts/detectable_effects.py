#!/usr/bin/env python3
"""Minimum detectable effects of the sequential judge (docs/sequential.md).

For each guardrail limit p0 and segment share, the smallest rate p the judge detects
within T seconds of the change, by the usual approximation: the e-process started at the
first look after the change grows by n * E_p[ln L_g] under alternative g, so it reaches the
threshold when n * drift_g(p) + ln(weight_g) >= ln A, n the requests of the test's segment
in T less one look. The grids and thresholds are those of sim/src/core/sequential.

With --burst, for a test that was quiet before the change (its events in the look interval
before it below the limit's share): the e-process that counts is then the test's first
burst start, which weighs (1 - LOOK_SHARE) x FIRST_BURST of the whole start budget instead of
LOOK_SHARE / (J (1 + TAIL)) for a look's start; it begins right after the event that
brings the change's interval to the limit's share of a look (one event at least), so the
wait for those events is lost (no look is taken off).

With --cusum, the judge before the e-detector, by the same approximation: a CUSUM per
alternative (1.5 p0 times powers of 2, 12 at most) against ln A = ln K + ln 12 + ln N +
ln(1/alpha), K = 14 features x 35 segments + 6, N twice the scenario's requests; only
feature mismatches were tested per segment then, the other rows' segment columns show
what the same threshold would have given.

usage: scripts/detectable_effects.py [--cusum | --burst] [RATE_RPS] [DURATION_S] [GUARDRAILS] [FEATURES] [SEGMENTS]
(defaults: the bundled card-fraud plan at 200 rps for 2 hours: 6 guardrails besides the
features' mismatches, 14 features, 35 segments counting `all`)
"""
import math
import sys

args = [a for a in sys.argv[1:] if a not in ("--cusum", "--burst")]
cusum = "--cusum" in sys.argv[1:]
burst = "--burst" in sys.argv[1:]
rate = float(args[0]) if len(args) > 0 else 200.0
duration = float(args[1]) if len(args) > 1 else 7200.0
guardrails = int(args[2]) if len(args) > 2 else 6
features = int(args[3]) if len(args) > 3 else 14
segments = int(args[4]) if len(args) > 4 else 35
# The features' mismatch tests weigh as much as two guardrails together.
units = guardrails + 2
look_s, alpha, tail, all_share, look_share, first_burst = 5.0, 0.01, 0.01, 0.75, 0.5, 0.9
planned = math.ceil(duration / look_s) + 1
# ln of the whole start budget over one start's weight, plus ln(1/alpha).
start = math.log(1 / ((1 - look_share) * first_burst)) if burst else math.log(planned * (1 + tail) / look_share)
base = start + math.log(1 / alpha)
ln_a_all = base + math.log(units / all_share)
ln_a_seg = base + math.log(units * (segments - 1) / (1 - all_share))
feature_extra = math.log(features / 2)
if cusum:
    ln_a_all = ln_a_seg = math.log(features * segments + 6) + math.log(12) + math.log(2 * rate * duration) + math.log(1 / alpha)
    feature_extra = 0.0


def geometric(p0, first, ratio, last):
    out, m = [], first
    while m <= last and p0 * m < 1 and len(out) < 24:
        out.append(m)
        m *= ratio
    return out


def grid(p0, segment):
    if cusum:
        # The CUSUM's threshold already paid for its alternatives: weight 1 each.
        return [(m, 1.0) for m in geometric(p0, 1.5, 2.0, math.inf)[:12]]
    if segment:
        ms = geometric(p0, 1.5, 2.0, math.inf)
        return [(m, 1 / len(ms)) for m in ms]
    fine, coarse = geometric(p0, 1.15, 1.17, 3.5), geometric(p0, 4.5, 1.6, math.inf)
    wf = 0.75 / len(fine) if coarse else 1 / len(fine)
    wc = 0.25 / len(coarse) if fine else 1 / len(coarse)
    return [(m, wf) for m in fine] + [(m, wc) for m in coarse]


def detected(p, p0, n, segment, feature, needed):
    ln_a = (ln_a_seg if segment else ln_a_all) + (feature_extra if feature else 0.0)
    # A burst start waits for the events that make its interval eventful.
    n = n - needed / p if burst else n
    for m, w in grid(p0, segment):
        p1 = m * p0
        drift = p * math.log(p1 / p0) + (1 - p) * math.log((1 - p1) / (1 - p0))
        if n > 0 and n * drift + math.log(w) >= ln_a:
            return True
    return False


def smallest(p0, share, seconds, segment, feature):
    n = rate * share * (seconds if burst else max(seconds - look_s, 0))
    # The events a quiet test's interval needs to be eventful: the limit's share of a look.
    needed = max(1, math.ceil(rate * share * look_s * p0 - 1e-9))
    lo, hi = p0, 1.0 - 1e-9
    if not detected(hi, p0, n, segment, feature, needed):
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if detected(mid, p0, n, segment, feature, needed) else (mid, hi)
    return hi


def pct(x):
    if x is None:
        return "-"
    return f"{100 * x:.2f} %" if x < 0.1 else f"{100 * x:.1f} %"


print(
    f"{'CUSUM' if cusum else 'e-detector, first burst' if burst else 'e-detector'}, {rate:g} rps, {duration:g} s: J = {planned}, ln A = {ln_a_all:.1f} "
    f"(all traffic), {ln_a_seg:.1f} (a segment), {feature_extra:.1f} more for a feature's mismatch"
)
print()
cols = [("all", 1.0, False), ("22 % segment", 0.22, True), ("3 % segment", 0.03, True)]
head = " | ".join(f"{name}, {t} s" for name, _, _ in cols for t in (60, 600))
print(f"| guardrail (limit) | {head} |")
print("|" + " --- |" * 7)
rows = [
    ("decision flips (0.2 %)", 0.002, False),
    ("feature mismatch (0.5 %)", 0.005, True),
    ("errors, timeouts (1 %)", 0.01, False),
    ("p99 latency exceedance (1 %)", 0.01, False),
    ("shadow context (0.1 %)", 0.001, False),
]
for name, p0, feature in rows:
    cells = [pct(smallest(p0, share, t, seg, feature)) for _, share, seg in cols for t in (60, 600)]
    print(f"| {name} | " + " | ".join(cells) + " |")
