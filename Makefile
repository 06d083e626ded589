# perception_nodes: the one entry point for set-up, demo and tests.
#   make demo   - set up everything needed, then run the multi-camera demo
#   make test   - set up everything needed, then run the whole test suite
#   make setup  - only the set-up (venv, ROS wheels, colcon build); idempotent
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PERCEPTION_VENV ?= $(HOME)/.local/share/perception_nodes/venv
export PERCEPTION_VENV
PYTHON ?= python3
VPY := $(PERCEPTION_VENV)/bin/python
IN_ENV := . tools/env.sh &&
DEMO_ARGS ?= --camera-rate-hz 2
PYTEST_ARGS ?=

# A failed step names itself and the reason.
fail = { echo "make setup: step '$(1)' failed: $(2)" >&2; exit 1; }

.PHONY: help setup venv deps cmake-paths system-tools build demo test doctor clean

help:
	@sed -n 's/^#   //p' Makefile

setup: venv deps cmake-paths system-tools build
	@echo "[setup] done; enter the environment with: . tools/env.sh"

venv:
	@if [ ! -x "$(VPY)" ]; then \
	  echo "[setup] venv: creating $(PERCEPTION_VENV)"; \
	  $(PYTHON) -m venv "$(PERCEPTION_VENV)" || $(call fail,venv,'$(PYTHON) -m venv' failed (Debian: apt-get install python3-venv)); \
	  "$(VPY)" -m pip install -q --upgrade 'pip>=24' || $(call fail,venv,could not upgrade pip (is PyPI reachable?)); \
	else echo "[setup] venv: $(PERCEPTION_VENV) exists"; fi

# Re-installs only when requirements*.txt, setup.py or this Makefile changed since the last success.
deps:
	@want=$$(cat requirements.txt requirements-peers.txt setup.py Makefile | sha256sum | cut -c1-16); \
	stamp="$(PERCEPTION_VENV)/.perception_nodes-deps"; \
	if [ "$$(cat "$$stamp" 2>/dev/null)" = "$$want" ] && "$(VPY)" -c 'import perception_nodes' 2>/dev/null; then \
	  echo "[setup] deps: up to date"; \
	else \
	  echo "[setup] deps: installing requirements.txt (ROS 2 Kilted wheels + project)"; \
	  "$(VPY)" -m pip install -q -r requirements.txt || $(call fail,deps,pip could not install requirements.txt (see pip output above)); \
	  "$(VPY)" -m pip install -q --no-deps -r requirements-peers.txt || $(call fail,deps,pip could not install requirements-peers.txt); \
	  "$(VPY)" -m pip install -q --no-deps --config-settings editable_mode=compat -e . || $(call fail,deps,pip install -e . failed); \
	  echo "$$want" > "$$stamp"; \
	fi

cmake-paths:
	@"$(VPY)" tools/rewrite_wheel_cmake_paths.py "$(PERCEPTION_VENV)" | sed 's/^/[setup] cmake-paths: /' \
	  || $(call fail,cmake-paths,could not rewrite the wheels' CMake include paths)

# tcpdump lets the loopback-only test capture on the other interfaces; ffmpeg serves the real-source graph
# test's network stream on loopback; headless chromium opens `perception report --html` in its test.
system-tools:
	@for tool in tcpdump ffmpeg chromium; do \
	  if command -v $$tool >/dev/null; then echo "[setup] system-tools: $$tool present"; \
	  elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "[setup] system-tools: installing $$tool"; \
	    (apt-get install -y -qq $$tool >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$tool >/dev/null 2>&1)) \
	      || echo "[setup] system-tools: WARNING: apt-get could not install $$tool; the tests that need it will be skipped"; \
	  else echo "[setup] system-tools: $$tool missing and not root; the tests that need it will be skipped"; fi; \
	done

# tf2_msgs, vision_msgs: the real packages when the environment has them, else the copies in compat/.
build:
	@mkdir -p log; $(IN_ENV) paths=". "; \
	for pkg in tf2_msgs vision_msgs; do \
	  if "$(VPY)" tools/find_ros_package.py $$pkg --exclude "$(CURDIR)/install"; then \
	    echo "[setup] build: using the installed $$pkg"; \
	  else paths="$$paths compat/$$pkg"; echo "[setup] build: $$pkg not found, building compat/$$pkg"; fi; \
	done; \
	echo "[setup] build: colcon build"; \
	colcon build --symlink-install --base-paths $$paths --event-handlers console_cohesion- summary- \
	  --cmake-args -DPython3_EXECUTABLE="$(VPY)" -DBUILD_TESTING=OFF > log/colcon-build.txt 2>&1 \
	  || { tail -40 log/colcon-build.txt >&2; $(call fail,build,colcon build failed; full log in log/colcon-build.txt); }

demo: setup
	@$(IN_ENV) perception demo $(DEMO_ARGS)

test: setup
	@$(IN_ENV) $(VPY) -m pytest $(PYTEST_ARGS)

doctor:
	@$(IN_ENV) perception doctor

clean:
	rm -rf build install log
