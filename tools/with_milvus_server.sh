#!/usr/bin/env bash
# Run a command beside a local Milvus server (the `milvus` wheel's embedded standalone server, 2.3.x), both in a
# network namespace that has only loopback: the server is reachable at http://127.0.0.1:19530 from the command
# and from nothing else. For measuring and testing the retrieval index's server path without a cluster:
#   tools/with_milvus_server.sh perception bench retrieval --sizes 1e4,1e5 --milvus-uri http://127.0.0.1:19530
#   tools/with_milvus_server.sh env PERCEPTION_MILVUS_URI=http://127.0.0.1:19530 python -m pytest test/test_retrieval.py -k milvus
# The server package is installed on first use under $PERCEPTION_MILVUS_SERVER_DIR (default ~/.cache/perception_nodes/milvus-server);
# its data lives in a fresh temporary folder, removed afterwards.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERVER_DIR="${PERCEPTION_MILVUS_SERVER_DIR:-$HOME/.cache/perception_nodes/milvus-server}"
. "$ROOT/tools/env.sh"
if [ ! -d "$SERVER_DIR/milvus" ]; then
    echo "[milvus] installing the embedded Milvus server into $SERVER_DIR" >&2
    python -m pip install --quiet --no-deps --target "$SERVER_DIR" "milvus==2.3.5"
fi
if [ -z "${PERCEPTION_IN_LOOPBACK_NS:-}" ]; then
    # Re-enter this script in a user + network namespace: only its own loopback, nothing outside reaches it.
    exec env PERCEPTION_IN_LOOPBACK_NS=1 unshare --user --map-root-user --net "$0" "$@"
fi
ip link set lo up
DATA="$(mktemp -d -t milvus-server-XXXXXX)"
LOG="$DATA/server.log"
python - "$SERVER_DIR" "$DATA" > "$LOG" 2>&1 <<'PY' &
import sys, time
sys.path.insert(0, sys.argv[1])
from milvus import default_server
default_server.set_base_dir(sys.argv[2])
default_server.listen_port = 19530
default_server.start()
print("MILVUS STARTED", flush=True)
while True:
    time.sleep(1)
PY
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    pkill -f "$DATA/bin/milvus" 2>/dev/null || true
    sleep 1
    rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 1 120); do
    grep -q "MILVUS STARTED" "$LOG" && break
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "[milvus] the server did not start:" >&2
        tail -20 "$LOG" >&2
        exit 1
    fi
    sleep 1
done
grep -q "MILVUS STARTED" "$LOG" || { echo "[milvus] the server did not start in 120 s" >&2; exit 1; }
echo "[milvus] server at http://127.0.0.1:19530 (loopback-only namespace)" >&2
cd "$ROOT"
"$@"
