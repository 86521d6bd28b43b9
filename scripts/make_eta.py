"""Writes the recorded requests of the bundled delivery-ETA example, as its legacy service
logged them (before the model's answers are added by train_eta.py).

usage: make_eta.py OUT.csv

Two days of food-delivery orders in eight cities, as a legacy ETA service's request log
looks: RFC 3339 times, courier ids as text, cities and vehicles as text (vehicles in the
mixed case different apps send, `unknown` when the app did not say, sometimes absent),
the kitchen's preparation estimate with -1 for unknown, the restaurant's queue sometimes
missing, rain as `true`/`false`/`1`/`0` text, and the minutes the delivery really took.
Deterministic: numpy's PCG64 seeded with 2026.
"""

import sys
from datetime import datetime, timedelta, timezone

import numpy as np

CITIES = [  # name, zone offset in March (hours), share of orders
    ("berlin", 1, 0.28), ("paris", 1, 0.22), ("madrid", 1, 0.15), ("warsaw", 1, 0.10),
    ("lisbon", 0, 0.10), ("athens", 2, 0.09), ("valletta", 1, 0.04),
    ("tallinn", 2, 0.02),  # unseen: the models' vocabulary does not list it
]
VEHICLES = [("bike", 0.45, 14.0), ("scooter", 0.35, 22.0), ("car", 0.20, 26.0)]
SPELLINGS = {"bike": ["bike", "Bike", "BIKE"], "scooter": ["scooter", "Scooter"], "car": ["car", "Car"]}
COURIERS = 900
START = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday
DAYS = 2
MEAN_RPS = 0.17


def local_curve(hour):
    """Relative order rate by local hour: quiet nights, lunch and dinner peaks."""
    base = {0: 0.15, 1: 0.08, 2: 0.05, 3: 0.03, 4: 0.03, 5: 0.05, 6: 0.15, 7: 0.35, 8: 0.45, 9: 0.45,
            10: 0.6, 11: 1.1, 12: 1.5, 13: 1.3, 14: 0.8, 15: 0.55, 16: 0.6, 17: 0.95, 18: 1.5,
            19: 1.9, 20: 1.7, 21: 1.1, 22: 0.6, 23: 0.3}
    return base[hour]


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(2026)
    city_of = rng.choice(len(CITIES), size=COURIERS, p=[c[2] for c in CITIES])
    vehicle_of = rng.choice(len(VEHICLES), size=COURIERS, p=[v[1] for v in VEHICLES])
    speed_of = rng.lognormal(0.0, 0.12, size=COURIERS)  # some couriers are faster
    couriers_in = {k: np.flatnonzero(city_of == k) for k in range(len(CITIES))}
    rows = []
    order_id = 100_000
    seconds = DAYS * 86_400
    # Thinned Poisson arrivals: the peak rate, kept with probability curve/peak per city.
    peak = MEAN_RPS * 2.6
    t = 0.0
    rain_by_city_hour = rng.random((len(CITIES), DAYS * 24)) < 0.18
    while True:
        t += rng.exponential(1.0 / peak)
        if t >= seconds:
            break
        k = rng.choice(len(CITIES), p=[c[2] for c in CITIES])
        name, offset, _ = CITIES[k]
        when = START + timedelta(seconds=t)
        local_hour = (when.hour + offset) % 24
        if rng.random() >= local_curve(local_hour) / 2.6:
            continue
        pool = couriers_in[k]
        courier = int(pool[min(int(rng.pareto(1.2) * 3), len(pool) - 1)]) if len(pool) else int(rng.integers(COURIERS))
        v = int(vehicle_of[courier])
        vehicle, _, kmh = VEHICLES[v]
        distance = float(np.clip(rng.lognormal(1.0, 0.6), 0.2, 25.0))
        items = int(rng.poisson(1.5)) + 1
        prep = max(3, int(round(rng.normal(10 + 2.0 * items, 3.5))))
        load = int(rng.poisson(3 + 4 * (local_curve(local_hour) > 1.0)))
        rain = bool(rain_by_city_hour[k, int(t // 3600)])
        rush = 1.35 if local_hour in (8, 9, 17, 18, 19) else 1.0
        ride = distance / (kmh * speed_of[courier]) * 60.0 * rush * (1.25 if rain else 1.0)
        minutes = prep + 0.8 * load + ride + 4.0 + rng.normal(0, 2.5)
        # What the log shows.
        u = rng.random()
        shown_vehicle = "" if u < 0.03 else ("unknown" if u < 0.08 else rng.choice(SPELLINGS[vehicle]))
        shown_prep = -1 if rng.random() < 0.08 else prep
        shown_load = "" if rng.random() < 0.1 else str(load)
        shown_rain = rng.choice(["true", "1"]) if rain else rng.choice(["false", "0"])
        order_id += 1
        rows.append([
            str(order_id), f"c-{courier:04d}", when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            name, shown_vehicle, f"{distance:.2f}", str(items), str(shown_prep), shown_load, shown_rain,
            f"{max(minutes, 5.0):.1f}",
        ])
    with open(out, "w") as f:
        f.write("order_id,courier_id,placed_at,city,vehicle,distance_km,items,prep_minutes,restaurant_load,rain,delivered_minutes\n")
        for r in rows:
            f.write(",".join(r) + "\n")
    print(f"{len(rows)} orders over {DAYS} days", file=sys.stderr)


if __name__ == "__main__":
    main()
