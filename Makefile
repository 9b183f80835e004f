# Two set-up commands for a fresh machine; each makes its own virtual environment.
#   make demo   the main job: a shipped clip through a shipped bundle, alerts over MQTT, a report
#   make test   the test suite (needs mosquitto and openssl: apt-get install -y mosquitto openssl)
PYTHON ?= python3
DEMO_ENV := .venv-demo
DEV_ENV := .venv

.PHONY: demo test bench clean

$(DEMO_ENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEMO_ENV)
	$(DEMO_ENV)/bin/pip install -q --upgrade pip
	# The runtime and the demo's extras only: no torch on this path.
	$(DEMO_ENV)/bin/pip install -q -e '.[demo]'
	touch $@

$(DEV_ENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEV_ENV)
	$(DEV_ENV)/bin/pip install -q --upgrade pip
	$(DEV_ENV)/bin/pip install -q -e '.[train,openvino,dev]'
	touch $@

demo: $(DEMO_ENV)/.installed
	$(DEMO_ENV)/bin/edge-vad demo --out edge-vad-demo

test: $(DEV_ENV)/.installed
	$(DEV_ENV)/bin/python -m pytest -q

clean:
	rm -rf $(DEMO_ENV) $(DEV_ENV) edge-vad-demo
