"""A small transformer trained for a few dozen steps on random data: the example job of
docs/profiling.md (allot submit --profile -- python examples/profile/train_tiny.py)."""

import argparse

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=24)
parser.add_argument("--batch", type=int, default=16)
parser.add_argument("--width", type=int, default=128)
args = parser.parse_args()

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"
layer = nn.TransformerEncoderLayer(args.width, 4, 4 * args.width, batch_first=True)
model = nn.Sequential(nn.TransformerEncoder(layer, 2), nn.Flatten(1), nn.LazyLinear(10)).to(device)
model(torch.zeros(1, 32, args.width, device=device))  # materialise the lazy layer
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
data = torch.utils.data.TensorDataset(
    torch.randn(args.steps * args.batch, 32, args.width),
    torch.randint(0, 10, (args.steps * args.batch,)),
)
for x, y in torch.utils.data.DataLoader(data, batch_size=args.batch):
    x, y = x.to(device), y.to(device)
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"trained {args.steps} steps on {device}; last loss {loss.item():.3f}")
