"""The first page of d2l's CNN chapter through convkit, on every backend that runs here.

    python examples/quickstart.py
"""
import torch

import convkit

X = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
K = torch.tensor([[0, 1], [2, 3]])
for backend in convkit.available_backends("cpu"):
    print(f"[{backend}]")
    print("  corr2d(X, K)          =", convkit.corr2d(X, K, backend=backend).tolist())
    print("  pool2d(X, 2)          =", convkit.pool2d(X, (2, 2), backend=backend).tolist())
    print("  pool2d(X, 2, 'avg')   =", convkit.pool2d(X, (2, 2), mode="avg", backend=backend).tolist())
    edge = torch.ones(6, 8)
    edge[:, 2:6] = 0
    print("  edge row              =", convkit.corr2d(edge, torch.tensor([[1.0, -1.0]]), backend=backend)[0].tolist())
