# `make test` and `make demo` set everything up on a fresh machine: a .venv with the CPU build of
# PyTorch 2.13.0 (training/exporting models and benchmarks only; the agent itself needs no torch)
# and the project with its dev extra.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: venv test demo lint protos models policies bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/edgetb demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

models: $(STAMP)
	$(BIN)/python scripts/train_models.py --out profiles

# The shipped T2DRL policy (DDQN caching + D3PG allocation), the MLP-actor pair trained the same way (DDQN +
# DDPG) and the DDQN trained around the square-root band rule, trained in the simulator on the x86-cpu profiles;
# `edgetb demo` runs them live (ddqn+d3pg, ddqn+ddpg, ddqn+sqrt-band).
# T2DRL_CONFIG: the actor corrects the square-root band rule and fixed steps, kept near them, and the DDQN replays
# only its last 5000 frames (README, "What make policies ships"; the runs behind it: docs/t2drl-log.md)
T2DRL_CONFIG := {"band_prior": true, "rule_prior": true, "allocation": {"action_l2": 3}, "caching": {"buffer_size": 5000}}

# $(call ship,ALGO,FOLDER,TRAIN OPTIONS): train 5 seeds two at a time, ship the best on validation workloads
define ship
	printf '%s\n' 0 1 2 3 4 | xargs -P 2 -I@ $(BIN)/edgetb train --algo $(1) --seed @ \
		--out runs/policies/$(1)-s@ --time-budget-s 1800 $(3)
	$(BIN)/edgetb select-policy $(foreach s,0 1 2 3 4,runs/policies/$(1)-s$(s)) --out profiles/policies/$(2)
endef

policies: $(STAMP)  # 5 training seeds each (~1 h on 2 cores)
	$(call ship,t2drl,t2drl,--config '$(T2DRL_CONFIG)')
	$(call ship,ddqn+ddpg,ddqn-ddpg,--config '$(T2DRL_CONFIG)')
	$(call ship,ddqn+sqrt-band,ddqn-sqrt-band,)

bench: $(STAMP)
	$(BIN)/python bench/exec_ort_vs_torch.py
	$(BIN)/python bench/rpc_overhead.py
	$(BIN)/python bench/telemetry_overhead.py
	$(BIN)/python bench/orchestrator_scale.py
	$(BIN)/python bench/policy_latency.py --t2drl profiles/policies/t2drl

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
