# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-cpu-classes test-loaded road demo gpu-check clean

venv: $(STAMP)

$(STAMP): setup.py setup.cfg Makefile
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[ros,train,test,openvino,fleet]'
	touch $(STAMP)

# The suite (lint included: test/test_lint.py); the CPU-class guard: the tests marked `plan` again under each other
# CPU class the plan knows, rehearsed by the flags it reads (test/classes/run_cpu_classes.py, about 30 s a class);
# then the user's road: a fresh runtime-only install from a clean copy of the tree, its node and tools run as a user
# runs them (test/road/check_user_road.sh, about a minute).
test: venv
	$(VPY) -m pytest -q -rs test
	$(VPY) test/classes/run_cpu_classes.py
	bash test/road/check_user_road.sh $(PYTHON)

# The plan tests under every CPU class, this machine's own included.
test-cpu-classes: venv
	$(VPY) test/classes/run_cpu_classes.py --all

road:
	bash test/road/check_user_road.sh $(PYTHON)

# `make test` with two busy processes beside it (one core of pure CPU work each), started and stopped by their
# ids (test/loaded/run_loaded.sh); prints the time. The suite must hold on a busy machine.
test-loaded: venv
	bash test/loaded/run_loaded.sh $(PYTHON)

# On a machine with an NVIDIA GPU (one command, under 8 minutes): the GPU tests, then liteseg-bench on CUDA for
# the three backbones at 360x640 and 1024x2048, written as one Markdown table to out/gpu-check.md.
gpu-check: venv
	$(VPY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs CUDA: no GPU visible to torch')"
	mkdir -p out
	$(VPY) -m pytest -q -rs -m gpu test
	$(VPY) -m liteseg_ros.tools.cli.bench --device cuda --backbones mobilenetv2 shufflenet darknet19 \
		--sizes 360x640 1024x2048 --markdown | tee out/gpu-check.md

demo: venv
	$(VPY) -m liteseg_ros.tools.demo --out out/demo

clean:
	rm -rf $(VENV) build *.egg-info out
