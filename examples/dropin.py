"""convkit as a drop-in: convert a ResNet-18-style network, check it is the same model, time both.

    python examples/dropin.py                         # batch 2 of 3x64x64 images, backend="auto"
    python examples/dropin.py --size 224 --batch 8    # ImageNet-sized (slower)
    python examples/dropin.py --backend unfold

The network is defined here (torchvision has no CPU build in this environment): torchvision's resnet18
layout, a 7x7/2 stem and 3x3/2 max pooling, four stages of two BasicBlocks (64, 128, 256, 512 channels, 1x1/2
projection shortcuts), global average pooling and a linear classifier. convkit.convert swaps its 20 Conv2d and
its MaxPool2d (AdaptiveAvgPool2d is not a convkit layer and stays torch's).

Checks, in float64: outputs and parameter gradients of the converted model equal the original's (batch norm in
eval mode), and state_dicts load both ways (into a differently initialised model, whose outputs then match too).
Timing, in float32 with torch.utils.benchmark: inference (eval, no_grad) and one training step (forward,
cross-entropy, backward, SGD step) of each model, the two taking turns over a few rounds, and the convkit / torch
ratio.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

import convkit


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (a 1x1 projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, widths=(64, 128, 256, 512)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, c = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(c, w, stride), BasicBlock(w, w)))
            c = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def count(model: nn.Module, kind) -> int:
    return sum(type(m) is kind for m in model.modules())


def check_equal(model: nn.Module, converted: nn.Module, x: torch.Tensor, y: torch.Tensor, tol: float) -> None:
    """Outputs and parameter gradients of the two models agree within tol, in float64.

    Batch norm is in eval mode (running statistics, a fixed affine map): in train mode with a batch of 2 and a
    1x1 last feature map, the batch statistics amplify the last-bit differences of any two convolution
    implementations far beyond float64's precision, which would measure batch norm, not convkit.
    """
    model, converted, x = model.double().eval(), converted.double().eval(), x.double()
    outs, grads = [], []
    for m in (model, converted):
        m.zero_grad(set_to_none=True)
        out = m(x)
        F.cross_entropy(out, y).backward()
        outs.append(out.detach())
        grads.append({k: p.grad for k, p in m.named_parameters()})
    torch.testing.assert_close(outs[1], outs[0], rtol=tol, atol=tol)
    err_grad = 0.0
    for name, g_ref in grads[0].items():
        torch.testing.assert_close(grads[1][name], g_ref, rtol=tol, atol=tol, msg=lambda m: f"{name}: {m}")
        err_grad = max(err_grad, (grads[1][name] - g_ref).abs().max().item())
    model.zero_grad(set_to_none=True), converted.zero_grad(set_to_none=True)
    print(f"float64: max |output difference| {(outs[1] - outs[0]).abs().max().item():.1e}, "
          f"max |gradient difference| {err_grad:.1e} over {len(grads[0])} parameters (tolerance {tol:g}): equal")


def check_state_dicts(model: nn.Module, converted: nn.Module, backend: str, x: torch.Tensor) -> None:
    """state_dict keys are identical and load both ways, into freshly (differently) initialised models."""
    assert converted.state_dict().keys() == model.state_dict().keys()
    torch.manual_seed(1234)
    fresh_torch = ResNet18().double().eval()
    fresh_convkit = convkit.convert(ResNet18(), backend=backend).double().eval()
    fresh_torch.load_state_dict(converted.state_dict())     # convkit -> torch.nn
    fresh_convkit.load_state_dict(model.state_dict())       # torch.nn -> convkit
    model.eval(), converted.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh_torch(x), converted(x), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(fresh_convkit(x), model(x), rtol=1e-10, atol=1e-10)
    print(f"state_dict: {len(model.state_dict())} identical keys; convkit -> torch.nn and torch.nn -> convkit "
          f"loads give the same outputs")


def time_models(models: dict, x: torch.Tensor, y: torch.Tensor, min_run_time: float, rounds: int):
    """Inference and training-step times of each model: torch.utils.benchmark medians, printed via Compare.

    The models take turns for `rounds` rounds (the machine's load then weighs on both alike); the measurements
    of one (model, task) are merged before the medians and ratios are taken.
    """
    steps = {}
    for name, model in models.items():
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def infer(model=model):
            with torch.no_grad():
                return model(x)

        def train_step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        steps[name] = (("inference", infer, model.eval), ("training step", train_step, model.train))
    results = []
    for _ in range(rounds):
        for name, tasks in steps.items():
            for task, fn, mode in tasks:
                mode()
                t = benchmark.Timer(stmt="fn()", globals={"fn": fn}, label=f"ResNet-18-style, input {tuple(x.shape)}",
                                    sub_label=task, description=name, num_threads=torch.get_num_threads())
                results.append(t.blocked_autorange(min_run_time=min_run_time))
    results = benchmark.Measurement.merge(results)
    compare = benchmark.Compare(results)
    compare.print()
    med = {(r.task_spec.sub_label, r.task_spec.description): r.median for r in results}
    for task in ("inference", "training step"):
        t_torch, t_ck = med[(task, "torch.nn")], med[(task, "convkit")]
        print(f"{task:14s} torch.nn {1e3 * t_torch:8.2f} ms   convkit {1e3 * t_ck:8.2f} ms   "
              f"ratio convkit / torch.nn {t_ck / t_torch:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="input height and width")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--backend", default="auto", choices=["auto", "naive", "unfold", "compiled", "torch"])
    parser.add_argument("--tol", type=float, default=1e-12, help="float64 tolerance of the equality checks")
    parser.add_argument("--min-run-time", type=float, default=0.3, help="seconds of timing per measurement and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds in which the two models take turns")
    parser.add_argument("--no-timing", action="store_true", help="only the equality and state_dict checks")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    model = ResNet18()
    converted = convkit.convert(model, backend=args.backend)
    resolved = convkit.functional.resolve_backend(args.backend, torch.device("cpu"), torch.float32)
    print(f"ResNet-18-style network, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
          f"convkit.convert(backend={args.backend!r} -> {resolved!r}) replaced "
          f"{count(converted, convkit.nn.Conv2d)} Conv2d and {count(converted, convkit.nn.MaxPool2d)} MaxPool2d "
          f"({count(converted, nn.Conv2d)} torch.nn.Conv2d left)")

    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    check_equal(model, converted, x, y, args.tol)
    check_state_dicts(model, converted, args.backend, x.double())
    if args.no_timing:
        return
    model, converted = model.float(), converted.float()
    print(f"timing in float32, {torch.get_num_threads()} thread(s):")
    time_models({"torch.nn": model, "convkit": converted}, x, y, args.min_run_time, args.rounds)


if __name__ == "__main__":
    main()
