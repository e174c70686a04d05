"""Learners, one readable file each (CleanRL-like): ``ddqn``, ``ddpg``, ``d3pg``; ``sb3`` wraps SAC/TD3.

Shared plumbing (replay buffer, target updates, seeding) lives in ``replay``.
"""
