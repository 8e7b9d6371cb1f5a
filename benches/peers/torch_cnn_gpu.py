"""PyTorch (cuDNN) peer for the GPU CNN training step: 28×28 images, batch 256, f32, Adam, the
layers of Keel's `c32,c32,m2,c64,m2,c64,g` + dense 10 (3×3 convolutions with padding 1, batch norm
in training mode and ReLU; 2×2 max pooling; global mean; linear).

Run on the GPU machine by cuda/check.sh, next to Keel's `gpu` bench (its `cnn_step`). PyTorch comes
with the GPU image (no requirements file: the installed version and cuDNN's are reported).
cudnn.benchmark is on, as a PyTorch user training a fixed shape would set it. Median over 30
timed steps after 5 warm-up steps, with torch.cuda.synchronize() around each.
"""
import json
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print(json.dumps({"bench": "torch_cnn_step", "error": "PyTorch is not installed"}))
    sys.exit(0)

if not torch.cuda.is_available():
    print(json.dumps({"bench": "torch_cnn_step", "error": "no CUDA device visible to PyTorch"}))
    sys.exit(0)

torch.backends.cudnn.benchmark = True
dev = torch.device("cuda:0")
torch.manual_seed(0)


def block(cin, cout):
    return [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout), torch.nn.ReLU()]


model = torch.nn.Sequential(
    *block(1, 32), *block(32, 32), torch.nn.MaxPool2d(2),
    *block(32, 64), torch.nn.MaxPool2d(2), *block(64, 64),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10),
).to(dev)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.randn(256, 1, 28, 28, device=dev)
y = torch.tensor([(i * 7) % 10 for i in range(256)], device=dev)
loss_fn = torch.nn.CrossEntropyLoss()


def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


for _ in range(5):
    step()
torch.cuda.synchronize()
times = []
for _ in range(30):
    t = time.perf_counter()
    step()
    torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
print(json.dumps({
    "bench": "torch_cnn_step",
    "torch": torch.__version__,
    "cudnn": torch.backends.cudnn.version(),
    "device": torch.cuda.get_device_name(0),
    "seconds": statistics.median(times),
}))
