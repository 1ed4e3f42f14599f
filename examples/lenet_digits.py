"""d2l's LeNet (7.6) built from convkit layers, trained with Adam on scikit-learn's handwritten digits.

    python examples/lenet_digits.py                           # the book's LeNet: sigmoid + average pooling
    python examples/lenet_digits.py --relu                    # ReLU + max pooling
    python examples/lenet_digits.py --compare-torch           # also train the identical torch.nn model
    python examples/lenet_digits.py --relu --plot curves.png  # learning curves as a PNG

Data: sklearn.datasets.load_digits, 1797 8x8 grey-level digits (0..16) that ship with scikit-learn (no
download). Each image is scaled to [0, 1], resized bilinearly to 24x24 and zero-padded to 28x28 (an MNIST-like
digit in a margin), and the set is split once, stratified by class, with a fixed seed (75 % train, 25 % test).

--compare-torch builds the same network from torch.nn layers, copies the convkit model's initial state_dict into
it, and trains both from the same seed on the same batches, one epoch of each in turn (so both see the same
machine load); it prints both accuracies and the median training time per epoch, and the convkit / torch ratio.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import convkit


def load_digits_28(seed: int, test_size: float = 0.25):
    """(X_train, y_train, X_test, y_test): digits as (N, 1, 28, 28) float32 in [0, 1], stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    X = F.pad(F.interpolate(X, size=(24, 24), mode="bilinear", align_corners=False).clamp(0, 1), (2, 2, 2, 2))
    y = torch.tensor(digits.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(torch.arange(len(y)).numpy(), test_size=test_size,
                                           stratify=digits.target, random_state=seed)
    idx_train, idx_test = torch.from_numpy(idx_train), torch.from_numpy(idx_test)
    return X[idx_train], y[idx_train], X[idx_test], y[idx_test]


def lenet(layers, relu: bool = False) -> nn.Sequential:
    """d2l's LeNet-5: `layers` provides Conv2d, AvgPool2d and MaxPool2d (convkit.nn or torch.nn)."""
    act = nn.ReLU if relu else nn.Sigmoid
    pool = layers.MaxPool2d if relu else layers.AvgPool2d
    return nn.Sequential(
        layers.Conv2d(1, 6, kernel_size=5, padding=2), act(), pool(kernel_size=2, stride=2),
        layers.Conv2d(6, 16, kernel_size=5), act(), pool(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), act(),
        nn.Linear(120, 84), act(),
        nn.Linear(84, 10))


def init_xavier(model: nn.Module) -> None:
    """d2l's init_cnn: Xavier-uniform weights for every Conv2d and Linear (sigmoid LeNet barely trains without it)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)


class ConvkitLayers:
    """convkit.nn's Conv2d / AvgPool2d / MaxPool2d with one backend bound."""

    def __init__(self, backend: str):
        self.Conv2d = functools.partial(convkit.nn.Conv2d, backend=backend)
        self.AvgPool2d = functools.partial(convkit.nn.AvgPool2d, backend=backend)
        self.MaxPool2d = functools.partial(convkit.nn.MaxPool2d, backend=backend)


class Run:
    """One model being trained: its optimizer, its own shuffling generator and its history."""

    def __init__(self, name: str, model: nn.Module, lr: float, seed: int):
        self.name, self.model = name, model
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.gen = torch.Generator().manual_seed(seed)  # same seed -> same batches for every run
        self.history = {"loss": [], "train_acc": [], "test_acc": [], "time": []}

    def train_epoch(self, X, y, batch_size: int) -> None:
        self.model.train()
        perm = torch.randperm(len(y), generator=self.gen)
        total_loss, correct = 0.0, 0
        t0 = time.perf_counter()
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            out = self.model(X[idx])
            loss = F.cross_entropy(out, y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total_loss += loss.item() * len(idx)
            correct += (out.argmax(1) == y[idx]).sum().item()
        self.history["time"].append(time.perf_counter() - t0)
        self.history["loss"].append(total_loss / len(y))
        self.history["train_acc"].append(correct / len(y))

    @torch.no_grad()
    def evaluate(self, X, y) -> None:
        self.model.eval()
        self.history["test_acc"].append((self.model(X).argmax(1) == y).float().mean().item())

    def line(self, epoch: int) -> str:
        h = self.history
        return (f"epoch {epoch:3d} {self.name:8s} loss {h['loss'][-1]:.4f}  train acc {100 * h['train_acc'][-1]:6.2f} %"
                f"  test acc {100 * h['test_acc'][-1]:6.2f} %  time {h['time'][-1]:.3f} s")


def plot(runs, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for run in runs:
        epochs = range(1, len(run.history["loss"]) + 1)
        ax_loss.plot(epochs, run.history["loss"], label=f"{run.name} train loss")
        ax_acc.plot(epochs, [100 * a for a in run.history["train_acc"]], label=f"{run.name} train acc")
        ax_acc.plot(epochs, [100 * a for a in run.history["test_acc"]], "--", label=f"{run.name} test acc")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--relu", action="store_true", help="ReLU + max pooling instead of the book's sigmoid + avg")
    parser.add_argument("--backend", default="auto", choices=["auto", "naive", "unfold", "compiled", "torch"])
    parser.add_argument("--compare-torch", action="store_true", help="also train the identical torch.nn model")
    parser.add_argument("--plot", metavar="PATH", help="save the learning curves to this PNG")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the initial weights and the batches")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    X_train, y_train, X_test, y_test = load_digits_28(args.seed)
    variant = "ReLU + max pooling" if args.relu else "sigmoid + average pooling (the book's)"
    resolved = convkit.functional.resolve_backend(args.backend, X_train.device, X_train.dtype)
    print(f"LeNet, {variant}; convkit backend={args.backend!r} ({resolved}); Adam lr {args.lr:g}, "
          f"batch {args.batch_size}, "
          f"{args.epochs} epochs, seed {args.seed}, {torch.get_num_threads()} thread(s)")
    print(f"digits: {len(y_train)} train / {len(y_test)} test images of {tuple(X_train.shape[1:])}")

    torch.manual_seed(args.seed)
    model = lenet(ConvkitLayers(args.backend), args.relu)
    init_xavier(model)
    runs = [Run("convkit", model, args.lr, args.seed)]
    if args.compare_torch:
        reference = lenet(nn, args.relu)
        reference.load_state_dict(runs[0].model.state_dict())  # identical initial weights
        runs.append(Run("torch.nn", reference, args.lr, args.seed))

    from tqdm import tqdm
    bar = tqdm(range(1, args.epochs + 1), desc="epochs", unit="epoch")
    for epoch in bar:
        for run in runs:
            run.train_epoch(X_train, y_train, args.batch_size)
            run.evaluate(X_test, y_test)
            tqdm.write(run.line(epoch))
        bar.set_postfix({r.name: f"{100 * r.history['test_acc'][-1]:.1f}%" for r in runs})
    bar.close()

    print("final test accuracy: " + "  ".join(f"{r.name} {100 * r.history['test_acc'][-1]:.2f} %" for r in runs))
    # the first epoch includes one-off costs (allocator warm-up, lazy initialisation): left out when there are others
    times = {r.name: statistics.median(r.history["time"][1:] or r.history["time"]) for r in runs}
    print("median training time per epoch: " + "  ".join(f"{name} {t:.3f} s" for name, t in times.items()))
    if args.compare_torch:
        diff = 100 * (runs[0].history["test_acc"][-1] - runs[1].history["test_acc"][-1])
        print(f"test accuracy difference convkit - torch.nn: {diff:+.2f} points")
        print(f"epoch time ratio convkit / torch.nn: {times['convkit'] / times['torch.nn']:.2f}")
    if args.plot:
        plot(runs, args.plot, f"LeNet, {variant}, on sklearn digits")
        print(f"learning curves saved to {args.plot}")


if __name__ == "__main__":
    main()
