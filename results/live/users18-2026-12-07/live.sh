#!/bin/bash
# The 18-user variant live: the selected T2DRL and DDQN+DDPG runs against random + fixed steps and
# popular-spread + sqrt-band, five workloads, one call per checkpoint, the order rotated; nothing else running.
# The checkpoints: edgetb select-policy runs/users18/t2drl-s{0..4} --out runs/live18/sel-t2drl (and ddqn+ddpg-s{0..4}
# --out runs/live18/sel-ddqn-ddpg), the runs trained by the 18-user train script (results/t2drl-users18).
cd "$(git rev-parse --show-toplevel)"
SC=results/t2drl-users18/t2drl-users18.toml
orders=("ddqn+d3pg,random+fixed-steps,popular-spread+sqrt-band" "random+fixed-steps,popular-spread+sqrt-band,ddqn+d3pg" "popular-spread+sqrt-band,ddqn+d3pg,random+fixed-steps")
for i in 0 1 2 3 4; do
  S=$((4000000 + i))
  if (( i % 2 == 1 )); then
    .venv/bin/edgetb fidelity --scenario $SC --checkpoint runs/live18/sel-ddqn-ddpg --slots 150 --seed $S --policies ddqn+ddpg --out runs/live18/mlp/seed$S
  fi
  .venv/bin/edgetb fidelity --scenario $SC --checkpoint runs/live18/sel-t2drl --slots 150 --seed $S --policies ${orders[$((i % 3))]} --out runs/live18/t2drl/seed$S
  if (( i % 2 == 0 )); then
    .venv/bin/edgetb fidelity --scenario $SC --checkpoint runs/live18/sel-ddqn-ddpg --slots 150 --seed $S --policies ddqn+ddpg --out runs/live18/mlp/seed$S
  fi
done
