"""PyTorch peer for the GPU HMC leapfrog step: an MLP 784→256→256→10 (f32, ReLU) on 100,000
synthetic 784-dimensional points, the full-batch tempered log posterior (categorical likelihood,
Gaussian prior of std 0.3, T = 1) on a flat parameter vector, and one velocity-Verlet step
(half kick, drift, full-batch gradient, half kick) — what `keel bayes hmc` does per step.

Run on the GPU machine by cuda/check.sh, next to Keel's `gpu` bench. PyTorch comes with the GPU
image (no requirements file: the installed version is reported). Median over 30 timed steps
after 5 warm-up steps, with torch.cuda.synchronize() around each.
"""
import json
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print(json.dumps({"bench": "torch_hmc_leapfrog", "error": "PyTorch is not installed"}))
    sys.exit(0)

if not torch.cuda.is_available():
    print(json.dumps({"bench": "torch_hmc_leapfrog", "error": "no CUDA device visible to PyTorch"}))
    sys.exit(0)

dev = torch.device("cuda:0")
torch.manual_seed(0)
torch.backends.cuda.matmul.allow_tf32 = False  # Keel's cuBLAS GEMMs are plain f32.
n, d, sizes = 100_000, 784, [784, 256, 256, 10]
x = torch.randn(n, d, device=dev)
y = torch.tensor([(i * 7) % 10 for i in range(n)], device=dev)
shapes = []
for a, b in zip(sizes[:-1], sizes[1:]):
    shapes += [(b, a), (b,)]
numel = [s[0] * (s[1] if len(s) == 2 else 1) for s in shapes]
theta = torch.cat([torch.randn(k, device=dev) * 0.05 for k in numel])
prior_var, temperature = 0.3 ** 2, 1.0


def log_posterior_and_grad(t):
    t = t.detach().requires_grad_(True)
    parts = torch.split(t, numel)
    h = x
    for i in range(0, len(parts), 2):
        w, b = parts[i].view(shapes[i]), parts[i + 1]
        h = h @ w.T + b
        if i + 2 < len(parts):
            h = torch.relu(h)
    ll = torch.log_softmax(h, -1).gather(1, y[:, None]).sum() / temperature
    lp = -0.5 * (t * t).sum() / prior_var / temperature
    (g,) = torch.autograd.grad(ll + lp, t)
    return ll.detach(), g


_, g0 = log_posterior_and_grad(theta)
p0 = torch.randn_like(theta)
eps = 1e-4


def step():
    p = p0 + 0.5 * eps * g0
    t = theta + eps * p
    _, g = log_posterior_and_grad(t)
    p = p + 0.5 * eps * g
    return t, p


for _ in range(5):
    step()
torch.cuda.synchronize()
times = []
for _ in range(30):
    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
print(json.dumps({
    "bench": "torch_hmc_leapfrog",
    "torch": torch.__version__,
    "device": torch.cuda.get_device_name(0),
    "seconds": statistics.median(times),
}))
