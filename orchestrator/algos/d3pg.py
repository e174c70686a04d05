"""D3PG: deep deterministic policy gradient whose actor is a small diffusion model over the action.

The actor runs a DDPM reverse chain of ``I`` steps over the action, from Gaussian noise, conditioned on
the state: an MLP denoiser (sinusoidal step embedding, Mish) predicts the noise at each step, the
"vp" beta schedule ``beta_i = 1 - exp(-beta_min/I - (2i-1)(beta_max-beta_min)/(2 I^2))`` sets the step
sizes, and the clean action each step implies is squashed by tanh, so the chain ends in [-1, 1]^d
(``DiffusionActor`` says why the squash sits inside the chain, not only at its end). A twin-Q critic
(the minimum of the two target critics in the bootstrap target) scores it; the actor is trained only
through ``-Q(s, actor(s))`` (the minimum of the twins) back-propagated through the whole chain (plus,
if ``bc_coef > 0``, the usual denoising loss on replayed actions; if ``action_l2 > 0``, the actions' square);
target networks follow by Polyak averaging (tau). (T2DRL, Liu et al., arXiv 2411.01458; RESEARCH.md §1.) An
env-specific "action amender" maps the tanh output onto the feasible set; it lives with the env.

Read top to bottom: ``Config``, ``vp_beta_schedule``, the networks, ``D3PG`` (``act``, ``update``,
checkpointing), ``train``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.algos.loop import run_continuous
from orchestrator.algos.replay import Batch, as_batch, mlp, seed_everything, soft_update


@dataclass
class Config:
    """D3PG hyper-parameters (defaults: tuned on the 10-channel water-filling problem)."""

    seed: int = 0
    """seed of torch, NumPy, the env and the replay sampling"""
    total_steps: int = 200_000
    """environment steps to train for (``train`` may stop earlier on its time budget)"""
    learning_starts: int = 1_000
    """uniformly random actions before the first update"""
    buffer_size: int = 100_000
    """replay capacity, transitions"""
    batch_size: int = 256
    """transitions per update"""
    updates_per_step: int = 1
    """gradient updates per environment step"""
    gamma: float = 0.99
    """discount factor (no bootstrap when a whole batch terminated, as in one-step problems)"""
    tau: float = 0.005
    """Polyak factor of the soft target updates"""
    actor_lr: float = 3e-4
    """Adam learning rate of the diffusion actor"""
    critic_lr: float = 1e-3
    """Adam learning rate of the twin critic"""
    denoise_steps: int = 5
    """I: steps of the reverse diffusion chain"""
    beta_min: float = 0.1
    """vp schedule's beta_min"""
    beta_max: float = 10.0
    """vp schedule's beta_max"""
    hidden: tuple[int, ...] = (128, 128)
    """hidden widths of the denoiser MLP"""
    time_dim: int = 16
    """width of the sinusoidal step embedding"""
    critic_hidden: tuple[int, ...] = (256, 256)
    """hidden widths of each critic MLP"""
    exploration_noise: float = 0.1
    """std of Gaussian noise added to the (tanh) action when acting non-deterministically"""
    bc_coef: float = 0.0
    """weight of the denoising (behaviour-cloning) loss on replayed actions in the actor loss; 0: off"""
    action_l2: float = 0.0
    """weight of the actions' squared norm (batch mean) in the actor loss; 0: off. With a residual action (an
    action of 0 plays a rule, ``features.Layout.band_prior`` / ``rule_steps``) it keeps the actor at the rule where
    the critic's gradient does not pay for leaving it"""
    policy_delay: int = 1
    """critic updates per actor (and target) update"""
    grad_clip: float = 0.0
    """max gradient norm of actor and critic updates; 0: no clipping"""


def vp_beta_schedule(steps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> torch.Tensor:
    """The discrete "vp" schedule: ``beta_i = 1 - exp(-beta_min/I - (2i-1)(beta_max-beta_min)/(2 I^2))``, i = 1..I."""
    i = torch.arange(1, steps + 1, dtype=torch.float64)
    betas = 1.0 - torch.exp(-beta_min / steps - (2 * i - 1) * (beta_max - beta_min) / (2 * steps**2))
    return betas.float()


class SinusoidalEmbedding(nn.Module):
    """The transformer's sinusoidal position embedding of a (float) step index."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half) / max(half - 1, 1)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Mish(nn.Module):
    """Mish, ``x tanh(softplus(x))``: the same function as ``nn.Mish``, whose CPU kernel is ~2.5x slower here."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class Denoiser(nn.Module):
    """eps_theta(x_i, i, s): the noise in action ``x_i`` at step ``i`` given state ``s``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], time_dim: int) -> None:
        super().__init__()
        self.time_mlp = nn.Sequential(
            SinusoidalEmbedding(time_dim),
            nn.Linear(time_dim, 2 * time_dim),
            Mish(),
            nn.Linear(2 * time_dim, time_dim),
        )
        self.net = mlp(act_dim + time_dim + obs_dim, hidden, act_dim, Mish)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """``t``: step indices, shape (B,), or (1,) for one step shared by the whole batch."""
        return self.net(torch.cat([x, self.time_mlp(t).expand(x.shape[0], -1), obs], dim=-1))


class DiffusionActor(nn.Module):
    """The DDPM reverse chain over the action, conditioned on the state, ending in tanh.

    At step i the denoiser predicts the noise ``eps``; the clean action it implies,
    ``x0 = (x_i - sqrt(1 - abar_i) eps) / sqrt(abar_i)``, is squashed by tanh (a smooth form of the usual
    "clip_denoised" to [-1, 1], which keeps the chain bounded before the denoiser has learned anything
    and, unlike a hard clip, keeps gradients), and ``x_{i-1}`` is drawn from the DDPM posterior
    ``N(c0_i tanh(x0) + ci_i x_i, sigma_i^2)``. At the last step ``c0 = 1``, ``ci = 0`` and no noise is
    added, so the chain's output is ``tanh(x0)``: an action in [-1, 1]^d.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: Config) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.steps = cfg.denoise_steps
        self.denoiser = Denoiser(obs_dim, act_dim, cfg.hidden, cfg.time_dim)
        betas = vp_beta_schedule(cfg.denoise_steps, cfg.beta_min, cfg.beta_max)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1), abar[:-1]])
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_cumprod", abar)
        self.register_buffer("sqrt_recip_abar", 1.0 / abar.sqrt())
        self.register_buffer("sqrt_recipm1_abar", (1.0 / abar - 1.0).sqrt())
        self.register_buffer("coef_x0", betas * abar_prev.sqrt() / (1.0 - abar))
        self.register_buffer("coef_xt", (1.0 - abar_prev) * alphas.sqrt() / (1.0 - abar))
        self.register_buffer("sigma", (betas * (1.0 - abar_prev) / (1.0 - abar)).clamp(min=1e-20).sqrt())

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions in [-1, 1], shape (B, act_dim); ``deterministic``: start at x_I = 0 and add no noise."""
        batch = obs.shape[0]
        x = obs.new_zeros(batch, self.act_dim) if deterministic else torch.randn(batch, self.act_dim)
        for i in reversed(range(self.steps)):
            eps = self.denoiser(x, torch.full((1,), float(i)), obs)
            x0 = torch.tanh(self.sqrt_recip_abar[i] * x - self.sqrt_recipm1_abar[i] * eps)
            x = self.coef_x0[i] * x0 + self.coef_xt[i] * x
            if i > 0 and not deterministic:
                x = x + self.sigma[i] * torch.randn_like(x)
        return x

    def denoising_loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The DDPM noise-prediction loss on (replayed) ``actions`` in [-1, 1]: the behaviour-cloning term.

        Forward-noise the actions, ``x_i = sqrt(abar_i) a + sqrt(1 - abar_i) z``; the target is the noise
        for which the chain's squashed clean action ``tanh(x0)`` is exactly ``a`` (``z`` itself, corrected
        for the squash: ``x0 = atanh(a)``).
        """
        i = torch.randint(0, self.steps, (obs.shape[0],))
        abar = self.alphas_cumprod[i][:, None]
        x_i = abar.sqrt() * actions + (1.0 - abar).sqrt() * torch.randn_like(actions)
        target = (x_i - abar.sqrt() * torch.atanh(actions.clamp(-0.999, 0.999))) / (1.0 - abar).sqrt()
        return F.mse_loss(self.denoiser(x_i, i.float(), obs), target)


class TwinCritic(nn.Module):
    """Two independent MLP Q(s, a) heads."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden, 1)
        self.q2 = mlp(obs_dim + act_dim, hidden, 1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, actions], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class D3PG:
    """The agent: diffusion actor, twin critic, their targets and optimisers.

    Args:
        obs_dim: observation length.
        act_dim: action length (actions live in [-1, 1]^act_dim).
        cfg: hyper-parameters.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: Config | None = None) -> None:
        self.cfg = cfg = cfg or Config()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor = DiffusionActor(obs_dim, act_dim, cfg)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = TwinCritic(obs_dim, act_dim, cfg.critic_hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.updates = 0
        self.env_steps = 0

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        """Actions in [-1, 1] for one observation (shape (obs_dim,)) or a batch (B, obs_dim).

        Non-deterministic: the chain's own noise plus ``exploration_noise``; deterministic: the
        noise-free chain from x_I = 0.
        """
        x, single = as_batch(obs, self.obs_dim)
        with torch.inference_mode():
            a = self.actor(x, deterministic)
            if not deterministic and self.cfg.exploration_noise > 0:
                a = (a + self.cfg.exploration_noise * torch.randn_like(a)).clamp(-1.0, 1.0)
        a = a.numpy()
        return a[0] if single else a

    def update(self, batch: Batch) -> dict[str, float]:
        """One critic step (and, every ``policy_delay`` updates, one actor step and the target updates)."""
        cfg = self.cfg
        target = batch.rewards
        if cfg.gamma > 0 and not bool(batch.dones.all()):
            with torch.no_grad():
                next_q = torch.min(*self.critic_target(batch.next_obs, self.actor_target(batch.next_obs)))
                target = batch.rewards + cfg.gamma * (1.0 - batch.dones) * next_q
        q1, q2 = self.critic(batch.obs, batch.actions)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()
        metrics = {"critic_loss": float(critic_loss.detach()), "q": float(q1.detach().mean())}
        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            self.critic.requires_grad_(False)
            actions = self.actor(batch.obs)
            actor_loss = -torch.min(*self.critic(batch.obs, actions)).mean()
            if cfg.action_l2 > 0:
                actor_loss = actor_loss + cfg.action_l2 * actions.square().sum(-1).mean()
            if cfg.bc_coef > 0:
                actor_loss = actor_loss + cfg.bc_coef * self.actor.denoising_loss(batch.obs, batch.actions)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
            self.actor_opt.step()
            self.critic.requires_grad_(True)
            soft_update(self.actor_target, self.actor, cfg.tau)
            soft_update(self.critic_target, self.critic, cfg.tau)
            metrics["actor_loss"] = float(actor_loss.detach())
        return metrics

    def state_dict(self) -> dict:
        """Everything needed to resume: config, dimensions, counters, networks, targets, optimisers."""
        return {
            "algo": "d3pg",
            "config": asdict(self.cfg),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "updates": self.updates,
            "env_steps": self.env_steps,
            **{name: getattr(self, name).state_dict() for name in _MODULES},
        }

    def load_state_dict(self, state: dict) -> None:
        """Load ``state_dict``'s output (copied: optimisers would otherwise share their moment tensors)."""
        state = copy.deepcopy(state)
        for name in _MODULES:
            getattr(self, name).load_state_dict(state[name])
        self.updates, self.env_steps = int(state["updates"]), int(state["env_steps"])

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> D3PG:
        """A new agent from ``save``'s file (its own config and dimensions)."""
        state = torch.load(path, weights_only=True)
        config = state["config"]
        config.update(hidden=tuple(config["hidden"]), critic_hidden=tuple(config["critic_hidden"]))
        agent = cls(state["obs_dim"], state["act_dim"], Config(**config))
        agent.load_state_dict(state)
        return agent


_MODULES = ("actor", "actor_target", "critic", "critic_target", "actor_opt", "critic_opt")


def train(
    cfg: Config,
    env,
    *,
    time_budget_s: float | None = None,
    callback: Callable[[int, D3PG], dict | None] | None = None,
    callback_every: int = 1_000,
) -> tuple[D3PG, list[dict]]:
    """Train on a Gymnasium env with a Box action space (actions rescaled from [-1, 1] to its bounds).

    Args:
        cfg: hyper-parameters (``total_steps`` environment steps at most).
        env: the environment (``reset``/``step``).
        time_budget_s: stop after this much wall time, s (checked every step).
        callback: called as ``callback(step, agent)`` every ``callback_every`` steps; a returned dict
            is merged into that step's history record.
        callback_every: environment steps between history records.

    Returns:
        The agent and the history: per record ``step``, ``wall_s``, ``updates``, the mean
        ``episode_return`` of the episodes ended since the previous record, and the callback's fields.
    """
    seed_everything(cfg.seed)
    agent = D3PG(env.observation_space.shape[0], env.action_space.shape[0], cfg)
    history = run_continuous(
        agent, cfg, env, time_budget_s=time_budget_s, callback=callback, callback_every=callback_every
    )
    return agent, history
