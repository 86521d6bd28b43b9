#!/usr/bin/env python3
"""Starts the real new platform on loopback for a migration: a Feast feature server over a
fresh feature repository, and MLServer serving the model artifact through its XGBoost
runtime (Open Inference Protocol). Needs the virtualenvs of scripts/platform/install.sh.

The Feast repository: one entity (the migration's join key), a push source whose batch
source is a parquet file (the offline store: the aggregates cutover's materialization job
folds from the event log the legacy path writes, pushed online and offline), and one feature
view holding the new spec's aggregates. It is applied and materialized before the feature
server starts, so the online store begins as the offline log says (empty on a fresh run).

Prints one JSON line once both servers answer (their URLs and the model's version; with
--env-file, also the `export` lines cutover's platform migration reads), then serves until
SIGINT/SIGTERM, --max-s seconds, or (with --stop-on-stdin-close) stdin closing: it always
stops by itself, and takes its servers down with it.

    scripts/platform/start.py --dir target/platform/run --join-key customer_id \\
        --join-type int64 --view customer_aggregates \\
        --features customer_txn_count,customer_avg_amount_eur --push-source aggregates_push \\
        --model fraud=domain/fraud/model.ubj --model-version 2
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(url, timeout_s):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


def identifier(s, what):
    if not s.replace("_", "").isalnum() or s[0].isdigit():
        sys.exit(f"start.py: {what} `{s}` is not a Python identifier")
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True, help="work folder (recreated)")
    p.add_argument("--join-key", required=True)
    p.add_argument("--join-type", choices=["int64", "string"], default="int64")
    p.add_argument("--view", required=True)
    p.add_argument("--features", required=True, help="comma-separated aggregate names")
    p.add_argument("--push-source", default="aggregates_push")
    p.add_argument("--ttl-s", type=int, default=0, help="the view's TTL (0: none)")
    p.add_argument("--online-store", choices=["sqlite", "redis"], default="sqlite")
    p.add_argument("--model", required=True, action="append", help="NAME=ARTIFACT (.json or .ubj); repeatable")
    p.add_argument("--model-version", default="1")
    p.add_argument("--max-s", type=float, default=1800.0)
    p.add_argument("--env-file", help="also write `export CUTOVER_...=` lines here once the servers answer")
    p.add_argument("--stop-on-stdin-close", action="store_true",
                   help="stop when stdin closes (a parent process holding a pipe)")
    p.add_argument("--venvs", default=os.environ.get("CUTOVER_PLATFORM_DIR", os.path.join(ROOT, "target", "platform")))
    a = p.parse_args()

    feast_bin = os.path.join(a.venvs, "feast-venv", "bin")
    mls_bin = os.path.join(a.venvs, "mlserver-venv", "bin")
    for b in (os.path.join(feast_bin, "feast"), os.path.join(mls_bin, "mlserver")):
        if not os.access(b, os.X_OK):
            sys.exit(f"start.py: {b} is missing: run scripts/platform/install.sh first")
    models_given = []
    for m in a.model:
        name, _, artifact = m.partition("=")
        if not artifact or not os.path.isfile(artifact):
            sys.exit(f"start.py: --model {m}: give NAME=ARTIFACT with an existing file")
        ext = os.path.splitext(artifact)[1]
        if ext not in (".json", ".ubj"):
            sys.exit(f"start.py: --model {m}: the artifact must be .json or .ubj")
        models_given.append((identifier(name, "model name"), artifact, ext))
    name = models_given[0][0]
    features = [identifier(f, "feature") for f in a.features.split(",") if f]
    identifier(a.view, "view")
    identifier(a.join_key, "join key")

    if a.env_file and os.path.exists(a.env_file):
        os.remove(a.env_file)
    work = os.path.abspath(a.dir)
    shutil.rmtree(work, ignore_errors=True)
    repo = os.path.join(work, "feature_repo")
    data = os.path.join(repo, "data")
    models = os.path.join(work, "models")
    os.makedirs(data)
    for n, _, _ in models_given:
        os.makedirs(os.path.join(models, n))
    children = []

    def stop(*_):
        for c in children:
            try:
                os.killpg(c.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for c in children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(c.pid, signal.SIGKILL)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    online = {"type": "sqlite", "path": "data/online.db"}
    if a.online_store == "redis":
        redis_port = free_port()
        server = shutil.which("redis-server")
        if not server:
            sys.exit("start.py: redis-server is missing (Debian's redis-server package)")
        children.append(subprocess.Popen(
            [server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        online = {"type": "redis", "connection_string": f"127.0.0.1:{redis_port}"}
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        yaml_online = "\n".join(f"  {k}: {v}" for k, v in online.items())
        f.write(f"project: cutover\nregistry: data/registry.db\nprovider: local\n"
                f"online_store:\n{yaml_online}\nentity_key_serialization_version: 3\n")
    value_type = "INT64" if a.join_type == "int64" else "STRING"
    ttl = f"timedelta(seconds={a.ttl_s})" if a.ttl_s > 0 else "timedelta(0)"
    fields = ",\n        ".join(f'Field(name="{x}", dtype=Float64)' for x in features)
    with open(os.path.join(repo, "features.py"), "w") as f:
        f.write(f'''# Written by scripts/platform/start.py for cutover's live tests.
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64

entity = Entity(name="{a.join_key}", join_keys=["{a.join_key}"], value_type=ValueType.{value_type})
log = FileSource(path="data/aggregates.parquet", timestamp_field="event_timestamp")
push = PushSource(name="{a.push_source}", batch_source=log)
view = FeatureView(
    name="{a.view}",
    entities=[entity],
    ttl={ttl},
    schema=[
        {fields},
    ],
    source=push,
    online=True,
)
''')
    # The offline log, empty with its schema: the job's pushes append to it.
    key_dtype = "int64" if a.join_type == "int64" else "object"
    seed = (
        "import pandas as pd\n"
        f"df = pd.DataFrame({{'{a.join_key}': pd.Series([], dtype='{key_dtype}'),"
        " 'event_timestamp': pd.Series([], dtype='datetime64[us, UTC]'),"
        + "".join(f" '{x}': pd.Series([], dtype='float64')," for x in features)
        + "})\n"
        "df.to_parquet('data/aggregates.parquet')\n"
    )
    feast_env = dict(os.environ, FEAST_USAGE="False", PYTHONUNBUFFERED="1")
    subprocess.run([os.path.join(feast_bin, "python"), "-c", seed], cwd=repo, check=True)
    log = open(os.path.join(work, "feast.log"), "w")
    subprocess.run([os.path.join(feast_bin, "feast"), "apply"], cwd=repo, check=True, stdout=log, stderr=log, env=feast_env)
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    subprocess.run([os.path.join(feast_bin, "feast"), "materialize", "2000-01-01T00:00:00", now],
                   cwd=repo, check=True, stdout=log, stderr=log, env=feast_env)

    for n, artifact, ext in models_given:
        shutil.copy(artifact, os.path.join(models, n, "model" + ext))
        with open(os.path.join(models, n, "model-settings.json"), "w") as f:
            json.dump({"name": n, "implementation": "mlserver_xgboost.XGBoostModel",
                       "parameters": {"uri": "./model" + ext, "version": a.model_version}}, f)
    feast_port, http_port, grpc_port, metrics_port = free_port(), free_port(), free_port(), free_port()
    with open(os.path.join(models, "settings.json"), "w") as f:
        json.dump({"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port,
                   "metrics_port": metrics_port, "parallel_workers": 0, "load_models_at_startup": True}, f)

    children.append(subprocess.Popen(
        # --max-requests 0: by default gunicorn restarts Feast's worker every ~1000 requests,
        # which stalls reads for hundreds of milliseconds every ten seconds at 100 requests/s
        # (seen here as a 1.7 % timeout rate that rolled a clean migration back).
        [os.path.join(feast_bin, "feast"), "serve", "-h", "127.0.0.1", "-p", str(feast_port), "--workers", "1",
         "--max-requests", "0", "--no-access-log"],
        cwd=repo, stdout=log, stderr=log, env=feast_env, start_new_session=True))
    mls_log = open(os.path.join(work, "mlserver.log"), "w")
    # One OpenMP thread: XGBoost scores one row per call, and OpenMP threads spinning on a
    # two-core machine shared with the router and the load generator stall calls for
    # hundreds of milliseconds.
    mls_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    children.append(subprocess.Popen(
        [os.path.join(mls_bin, "mlserver"), "start", models], cwd=work, stdout=mls_log, stderr=mls_log,
        env=mls_env, start_new_session=True))
    fs, ms = f"http://127.0.0.1:{feast_port}", f"http://127.0.0.1:{http_port}"
    if not up(fs + "/health", 90) or not all(up(f"{ms}/v2/models/{n}/ready", 90) for n, _, _ in models_given):
        print(json.dumps({"error": f"the servers did not come up: see {work}/feast.log and mlserver.log"}), flush=True)
        stop()
    print(json.dumps({"feature_server": fs, "model_server": ms, "model": name, "model_version": a.model_version,
                      "model_repository": models, "feature_repo": repo}), flush=True)
    if a.env_file:
        tmp = a.env_file + ".partial"
        with open(tmp, "w") as f:
            f.write(f"export CUTOVER_FEATURE_SERVER={fs}\nexport CUTOVER_MODEL_SERVER={ms}\n"
                    f"export CUTOVER_MODEL_REPOSITORY={models}\n")
        os.replace(tmp, a.env_file)

    # Until told, or stdin closes (the parent died, when asked), or the time limit.
    if a.stop_on_stdin_close:
        threading.Thread(target=lambda: (sys.stdin.read(), os.kill(os.getpid(), signal.SIGTERM)), daemon=True).start()
    deadline = time.time() + a.max_s
    while time.time() < deadline:
        if any(c.poll() is not None for c in children):
            print(json.dumps({"error": "a platform server exited"}), flush=True)
            break
        time.sleep(0.5)
    stop()


if __name__ == "__main__":
    main()
