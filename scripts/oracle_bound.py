#!/usr/bin/env python3
"""How fast could any judge confirm a rate above its limit? (docs/sequential.md)

An oracle lower bound, for a fault that raises a rate from at most P0 to P1 at a time no
judge knows in advance, on a test of requests arriving at RATE per second over a rollout of
HORIZON seconds, under a budget ALPHA of false rollbacks over the whole rollout.

Cut the rollout into W = HORIZON / d windows of d seconds. The chances of a false alarm in
each window add up to at most ALPHA, so in at least a share 1 - q of them the chance is at
most ALPHA / (q W). A fault that starts at such a window's start is confirmed within d
with a probability no higher than the most powerful test of P0 against P1 on the window's
n = RATE d requests at that level (Neyman-Pearson: the binomial count, randomized at the
boundary; what came before the fault is the same under both and tells nothing). So, for a
fault starting at a random window's start, P(confirmed within d) <= q + (1 - q) power, and
the median time to confirm exceeds d whenever that bound is below 1/2 for some q.

The oracle knows P1 exactly, the window the fault falls in, and spends the whole budget on
this one test; a judge watching several guardrails and segments, with effects of unknown
size, spends a share and pays for a grid of alternatives, so it is slower than d printed.

usage: scripts/oracle_bound.py RATE_RPS HORIZON_S P0 P1 [ALPHA]
(for eta-timeouts-3pct: 20 4800 0.01 0.03)
"""
import math
import sys


def binom_tail(n, p, k):
    """P(X >= k) for X ~ Bin(n, p), summed in the log domain."""
    if k <= 0:
        return 1.0
    total = 0.0
    for i in range(k, n + 1):
        log_term = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        log_term += i * math.log(p) + (n - i) * math.log1p(-p)
        total += math.exp(log_term)
    return min(total, 1.0)


def np_power(n, p0, p1, level):
    """The most powerful level-`level` test of Bin(n, p0) against Bin(n, p1) (p1 > p0)."""
    k = 0
    while binom_tail(n, p0, k) > level:
        k += 1
    # Reject for X >= k, and for X = k - 1 with the probability that spends the rest.
    at = binom_tail(n, p0, k - 1) - binom_tail(n, p0, k)
    gamma = (level - binom_tail(n, p0, k)) / at if at > 0 else 0.0
    return binom_tail(n, p1, k) + gamma * (binom_tail(n, p1, k - 1) - binom_tail(n, p1, k))


def confirmed_within(rate, horizon, p0, p1, alpha, d):
    """The oracle bound on P(confirmed within d), minimized over q."""
    windows = max(int(horizon // d), 1)
    n = int(rate * d)
    best = 1.0
    for q in [i / 100 for i in range(1, 100)]:
        level = min(alpha / (q * windows * (1 - alpha)), 1.0)
        best = min(best, q + (1 - q) * np_power(n, p0, p1, level))
    return best


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    rate, horizon, p0, p1 = (float(a) for a in sys.argv[1:5])
    alpha = float(sys.argv[5]) if len(sys.argv) > 5 else 0.01
    print(f"{p1:g} against {p0:g} at {rate:g} rps over {horizon:g} s, alpha {alpha:g}")
    print("d (s)  requests  P(confirmed within d) at most")
    for d in [5, 10, 15, 20, 25, 30, 35, 40, 50, 60]:
        print(f"{d:5}  {int(rate * d):8}  {confirmed_within(rate, horizon, p0, p1, alpha, d):.3f}")


if __name__ == "__main__":
    main()
