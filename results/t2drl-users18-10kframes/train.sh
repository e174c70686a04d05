#!/bin/bash
# T2DRL and DDQN+DDPG, seeds 0-4, on the 18-user variant, T2DRL_CONFIG with the caching phase lengthened so the
# DDQN gets ~10 000 frames as in the shipped scenario (725 000 requests in all); ten at once.
cd "$(git rev-parse --show-toplevel)"
CFG='{"band_prior": true, "rule_prior": true, "allocation": {"action_l2": 3}, "caching": {"buffer_size": 5000}, "caching_requests": 665000}'
for algo in t2drl ddqn+ddpg; do
  for s in 0 1 2 3 4; do
    .venv/bin/edgetb train --scenario results/t2drl-users18/t2drl-users18.toml --algo $algo --backend sim --seed $s \
      --out runs/users18f/$algo-s$s --time-budget-s 5000 --config "$CFG" > runs/users18f/$algo-s$s.log 2>&1 &
  done
done
wait
