# Source this file to get the perception_nodes run environment:
#   . tools/env.sh
# It activates the venv, sources the colcon install space and pins DDS discovery
# to loopback. Override the venv location with PERCEPTION_VENV.
_pn_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
: "${PERCEPTION_VENV:=$HOME/.local/share/perception_nodes/venv}"
if [ ! -x "$PERCEPTION_VENV/bin/python" ]; then
  echo "tools/env.sh: no venv at $PERCEPTION_VENV; run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$PERCEPTION_VENV/bin/activate"
# The wheels' ament index (typesupport lookup) lives in the venv prefix.
case ":${AMENT_PREFIX_PATH:-}:" in *":$PERCEPTION_VENV:"*) ;; *) export AMENT_PREFIX_PATH="$PERCEPTION_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";; esac
case ":${CMAKE_PREFIX_PATH:-}:" in *":$PERCEPTION_VENV:"*) ;; *) export CMAKE_PREFIX_PATH="$PERCEPTION_VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}";; esac
if [ -f "$_pn_root/install/setup.bash" ]; then
  # colcon's setup scripts read unset variables; tolerate callers running with set -u.
  case $- in *u*) _pn_nounset=1; set +u;; *) _pn_nounset=;; esac
  # shellcheck disable=SC1091
  . "$_pn_root/install/setup.bash"
  [ -n "$_pn_nounset" ] && set -u
  unset _pn_nounset
fi
# Fast DDS multicasts discovery on every interface unless told otherwise;
# this project's processes must stay on loopback.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export YOLO_OFFLINE=1
export PERCEPTION_ROOT="$_pn_root"
unset _pn_root
