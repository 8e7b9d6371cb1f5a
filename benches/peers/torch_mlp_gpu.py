"""PyTorch eager peer for the GPU MLP training step (784→1024→1024→10, batch 1024, f32, Adam).

Run on the GPU machine by cuda/check.sh, next to Keel's `gpu` bench. PyTorch comes with the GPU
image (no requirements file: whatever version is installed there is reported in the output).
Median over 50 timed steps after 10 warm-up steps, with torch.cuda.synchronize() around each.
"""
import json
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print(json.dumps({"bench": "torch_mlp_step", "error": "PyTorch is not installed"}))
    sys.exit(0)

if not torch.cuda.is_available():
    print(json.dumps({"bench": "torch_mlp_step", "error": "no CUDA device visible to PyTorch"}))
    sys.exit(0)

dev = torch.device("cuda:0")
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(784, 1024), torch.nn.ReLU(),
    torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
    torch.nn.Linear(1024, 10),
).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.randn(1024, 784, device=dev)
y = torch.tensor([(i * 7) % 10 for i in range(1024)], device=dev)
loss_fn = torch.nn.CrossEntropyLoss()


def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


for _ in range(10):
    step()
torch.cuda.synchronize()
times = []
for _ in range(50):
    t = time.perf_counter()
    step()
    torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
print(json.dumps({
    "bench": "torch_mlp_step",
    "torch": torch.__version__,
    "device": torch.cuda.get_device_name(0),
    "seconds": statistics.median(times),
}))
