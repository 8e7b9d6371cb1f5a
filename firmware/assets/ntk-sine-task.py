#!/usr/bin/env python3
"""Writes the training table of the sine network the firmware adapts (ntk-sine.safetensors).

One task of the sine-wave transfer of Maddox et al., "Fast Adaptation with Linearized Neural
Networks" (AISTATS 2021), as in the reference's experiments/simple_reg/ntk_transfer_regression.py
(tasks of Bayesian MAML): y = A sin(w x + b) + 0.01 A e, with A ~ U[0.1, 5], b ~ U[0, 2 pi],
w ~ U[0.5, 2], x ~ U(-5, 5), e ~ N(0, 1). Python's standard library only (random.Random is
Mersenne Twister; the same seed gives the same table on any Python 3).

Usage: python3 firmware/assets/ntk-sine-task.py [--seed 10] [--points 1000] > sine-task0.csv
"""
import argparse
import math
import random
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=10)
parser.add_argument("--points", type=int, default=1000)
args = parser.parse_args()

rng = random.Random(args.seed)
amplitude = rng.uniform(0.1, 5.0)
phase = rng.uniform(0.0, 2.0 * math.pi)
frequency = rng.uniform(0.5, 2.0)
print(f"# task: A = {amplitude!r}, b = {phase!r}, w = {frequency!r}", file=sys.stderr)
print("x,y")
for _ in range(args.points):
    x = rng.uniform(-5.0, 5.0)
    y = amplitude * math.sin(frequency * x + phase) + 0.01 * amplitude * rng.gauss(0.0, 1.0)
    print(f"{x!r},{y!r}")
