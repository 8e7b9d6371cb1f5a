#!/usr/bin/env python3
"""PyTorch peer of Keel's GAN training: the time of one OUTER iteration of WGAN-GP with sample
re-weighting and probability-ratio clipping (Wu et al., "Improving GAN Training with Probability
Ratio Clipping and Sample Reweighting", NeurIPS 2020; the loop of the reference's
`cifar10/main.py`, with the small models below in place of its ResNets).

One outer iteration, batch B (256):
  5 critic steps, each: fresh z ~ N(0, I), a new real batch; fake = G(z) (no gradient to G);
      w = B * softmax(f(fake)) over the batch, without gradient;
      L = -mean f(real) + mean(w * f(fake)) + 5 * mean((|grad_x f(x_hat)|_2 - 1)^2),
      x_hat = a * real + (1 - a) * fake, a ~ U(0, 1) per sample (the penalty by double backward);
      Adam(lr 1e-4, betas (0, 0.9)) on the critic.
  D0 = D(G_old(z)) with the z of the last critic step and the generator before the loop (no
      gradient); P0 = (1 - D0) / max(D0, 1e-7).
  5 generator iterations, each:
      classifier step: BCE(D(real), 1) + BCE(D(G(z')), 0), fresh z', a new real batch, gradient
          norm clipped to 0.5, Adam(lr 2e-5, betas (0, 0.9));
      generator step on the same z as D0: x = G(z), D1 = D(x), r = (1 - D1) / max(D1 * P0, 1e-7),
          A = f(x) (gradient through r and A), s1 = r A, s2 = clip(r, 1 - 0.4, 1 + 0.4) A,
          obj = min(s1, s2) where A > 0 else max(s1, s2), loss = -mean(obj),
          Adam(lr 2e-5, betas (0, 0.9)) on the generator.
  Parameters of the networks not being stepped are frozen (requires_grad False) during a step,
  as a PyTorch user writes a GAN loop.

Models (f32, PyTorch's default initialisation), width d = 32, latent 128:
  images C x H x W (H, W divisible by 4):
    G: Linear(128 -> 4d (H/4)(W/4)) -> reshape [4d, H/4, W/4] -> BatchNorm2d -> ReLU
       -> ConvTranspose2d(4d -> 2d, k4, s2, p1) -> BatchNorm2d -> ReLU
       -> ConvTranspose2d(2d -> C, k4, s2, p1) -> tanh   (batch norm in training mode throughout)
    critic f: Conv2d(C -> d, k4, s2, p1) -> LeakyReLU(0.2) -> Conv2d(d -> 2d, k4, s2, p1)
       -> LeakyReLU(0.2) -> flatten -> Linear(2d (H/4)(W/4) -> 1)
    classifier D: the critic's layers, then a sigmoid.
  --ring: 2-D data (8 Gaussians on a circle of radius 2, std 0.02); G, f and D are MLPs with 3
    hidden layers of 128 units and ReLU (G: latent -> 2; f: 2 -> 1; D: 2 -> 1, then a sigmoid).

Real images are torch.randn clipped to [-1, 1] (the timing is the point): 10 real batches per
outer iteration drawn before the timed loop and reused. Timing: --warmup outer iterations, then
the median and minimum over --iters timed ones (CUDA: torch.cuda.synchronize() before reading
the clock; cudnn.benchmark on, as a user training fixed shapes sets it).

  gan_step.py [--size 8|28|32] [--channels 1|3] [--ring] [--batch 256] [--threads N]
              [--device cpu|cuda] [--iters K] [--warmup W] [--json]

The pins are those of requirements-torch.txt (venv .venv-torch, made as run_conv.sh makes it).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
from torch import nn

LATENT = 128
WIDTH = 32
CRITIC_ITERS = 5
PPO_ITERS = 5
LAMBDA_GP = 5.0
CLIP_EPS = 0.4
LR_CRITIC = 1e-4
LR_G = LR_CRITIC / PPO_ITERS
LR_CLS = LR_CRITIC / PPO_ITERS
BETAS = (0.0, 0.9)
CLS_GRAD_CLIP = 0.5
RING_MODES, RING_RADIUS, RING_STD, RING_HIDDEN = 8, 2.0, 0.02, 128


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ------------------------------------------------------------------ models


class Generator(nn.Module):
    def __init__(self, channels, h, w):
        super().__init__()
        d, self.h4, self.w4 = WIDTH, h // 4, w // 4
        self.fc = nn.Linear(LATENT, 4 * d * self.h4 * self.w4)
        self.net = nn.Sequential(
            nn.BatchNorm2d(4 * d), nn.ReLU(),
            nn.ConvTranspose2d(4 * d, 2 * d, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * d), nn.ReLU(),
            nn.ConvTranspose2d(2 * d, channels, 4, stride=2, padding=1), nn.Tanh(),
        )

    def forward(self, z):
        x = self.fc(z).view(z.shape[0], 4 * WIDTH, self.h4, self.w4)
        return self.net(x)


def conv_critic(channels, h, w, sigmoid):
    d = WIDTH
    layers = [
        nn.Conv2d(channels, d, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(d, 2 * d, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * d * (h // 4) * (w // 4), 1),
    ]
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def mlp(n_in, n_out, sigmoid=False):
    k = RING_HIDDEN
    layers = [nn.Linear(n_in, k), nn.ReLU(), nn.Linear(k, k), nn.ReLU(),
              nn.Linear(k, k), nn.ReLU(), nn.Linear(k, n_out)]
    if sigmoid:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def ring_batch(batch, device):
    k = torch.randint(0, RING_MODES, (batch,), device=device).float()
    angle = 2 * torch.pi * k / RING_MODES
    centres = RING_RADIUS * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + RING_STD * torch.randn(batch, 2, device=device)


# ------------------------------------------------------------------ the loop


def set_grad(module, on):
    for p in module.parameters():
        p.requires_grad_(on)


class Gan:
    def __init__(self, args, device):
        self.device, self.batch = device, args.batch
        if args.ring:
            self.G = mlp(LATENT, 2)
            self.f = mlp(2, 1)
            self.D = mlp(2, 1, sigmoid=True)
            self.reals = [ring_batch(args.batch, device) for _ in range(CRITIC_ITERS + PPO_ITERS)]
        else:
            c, s = args.channels, args.size
            self.G = Generator(c, s, s)
            self.f = conv_critic(c, s, s, sigmoid=False)
            self.D = conv_critic(c, s, s, sigmoid=True)
            self.reals = [torch.randn(args.batch, c, s, s, device=device).clamp_(-1.0, 1.0)
                          for _ in range(CRITIC_ITERS + PPO_ITERS)]
        for m in (self.G, self.f, self.D):
            m.to(device).train()
        self.opt_f = torch.optim.Adam(self.f.parameters(), lr=LR_CRITIC, betas=BETAS)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=LR_G, betas=BETAS)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=LR_CLS, betas=BETAS)
        self.bce = nn.BCELoss()

    def z(self):
        return torch.randn(self.batch, LATENT, device=self.device)

    def critic_step(self, real):
        z = self.z()
        with torch.no_grad():
            fake = self.G(z)
        f_real = self.f(real)
        f_fake = self.f(fake)
        w = self.batch * torch.softmax(f_fake.detach().flatten(), dim=0)
        loss = -f_real.mean() + (w * f_fake.flatten()).mean()
        a = torch.rand((self.batch,) + (1,) * (real.dim() - 1), device=self.device)
        x_hat = (a * real + (1 - a) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(self.f(x_hat).sum(), x_hat, create_graph=True)
        gp = LAMBDA_GP * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        loss = loss + gp
        self.opt_f.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_f.step()
        return z, loss.detach()

    def classifier_step(self, real):
        with torch.no_grad():
            fake = self.G(self.z())
        d_real, d_fake = self.D(real), self.D(fake)
        loss = (self.bce(d_real, torch.ones_like(d_real))
                + self.bce(d_fake, torch.zeros_like(d_fake)))
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.D.parameters(), CLS_GRAD_CLIP)
        self.opt_D.step()

    def generator_step(self, z, p0):
        x = self.G(z)
        d1 = self.D(x).flatten()
        r = (1 - d1) / torch.clamp(d1 * p0, min=1e-7)
        adv = self.f(x).flatten()
        s1 = r * adv
        s2 = torch.clamp(r, 1 - CLIP_EPS, 1 + CLIP_EPS) * adv
        obj = torch.where(adv > 0, torch.minimum(s1, s2), torch.maximum(s1, s2))
        loss = -obj.mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        return loss.detach()

    def outer(self):
        set_grad(self.G, False)
        set_grad(self.D, False)
        set_grad(self.f, True)
        for k in range(CRITIC_ITERS):
            z, critic_loss = self.critic_step(self.reals[k])
        set_grad(self.f, False)
        with torch.no_grad():
            d0 = self.D(self.G(z)).flatten()
            p0 = (1 - d0) / torch.clamp(d0, min=1e-7)
        for k in range(PPO_ITERS):
            set_grad(self.D, True)
            self.classifier_step(self.reals[CRITIC_ITERS + k])
            set_grad(self.D, False)
            set_grad(self.G, True)
            gen_loss = self.generator_step(z, p0)
            set_grad(self.G, False)
        return critic_loss, gen_loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, choices=[8, 28, 32], default=8)
    ap.add_argument("--channels", type=int, choices=[1, 3], default=1)
    ap.add_argument("--ring", action="store_true", help="the 2-D ring GAN with MLPs")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch.set_num_threads (default: the CPU count, as rayon)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--iters", type=int, default=20, help="timed outer iterations")
    ap.add_argument("--warmup", type=int, default=3, help="untimed outer iterations first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="JSON on stdout instead of text")
    args = ap.parse_args()
    if args.iters < 1 or args.warmup < 0 or args.batch < 1 or args.threads < 1:
        ap.error("--iters, --batch and --threads must be positive, --warmup not negative")
    if args.device == "cuda" and not torch.cuda.is_available():
        # With --json, as torch_cnn_gpu.py: the error in the JSON and exit 0, so a GPU check
        # script goes on to its other benches; as text, exit 2.
        msg = "no CUDA device visible to PyTorch"
        if args.json:
            print(json.dumps({"bench": "gan_step", "error": msg}))
            sys.exit(0)
        print(msg, file=sys.stderr)
        sys.exit(2)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    gan = Gan(args, device)
    for _ in range(args.warmup):
        gan.outer()
    sync()
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        critic_loss, gen_loss = gan.outer()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    critic_loss, gen_loss = float(critic_loss), float(gen_loss)

    case = "ring" if args.ring else f"image {args.channels}x{args.size}x{args.size}"
    res = {
        "bench": "gan_step",
        "case": case,
        "batch": args.batch,
        "latent": LATENT,
        "width": None if args.ring else WIDTH,
        "hidden": RING_HIDDEN if args.ring else None,
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "threads": args.threads,
        "warmup": args.warmup,
        "iters": args.iters,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "last_losses": {"critic": critic_loss, "generator": gen_loss},
        "machine": {"cpu": cpu_model(), "nproc": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "cudnn": torch.backends.cudnn.version() if args.device == "cuda" else None},
    }
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"gan_step {case}, batch {args.batch}, {args.device}"
              f" ({res['gpu'] or res['machine']['cpu']}, {args.threads} threads):"
              f" median {res['median_ms']:.2f} ms, min {res['min_ms']:.2f} ms per outer"
              f" iteration over {args.iters} (after {args.warmup} warm-up);"
              f" last losses critic {critic_loss:.4g}, generator {gen_loss:.4g}")


if __name__ == "__main__":
    main()
