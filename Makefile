# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test road demo clean

venv: $(STAMP)

$(STAMP): setup.py setup.cfg Makefile
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e '.[ros,train,test]'
	touch $(STAMP)

# The suite (lint included: test/test_lint.py), then the user's road: a fresh runtime-only install from a clean
# copy of the tree, its node and tools run as a user runs them (test/road/check_user_road.sh, about a minute).
test: venv
	$(VPY) -m pytest -q -rs test
	bash test/road/check_user_road.sh $(PYTHON)

road:
	bash test/road/check_user_road.sh $(PYTHON)

demo: venv
	$(VPY) -m liteseg_ros.tools.demo --out out/demo

clean:
	rm -rf $(VENV) build *.egg-info out
