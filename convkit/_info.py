"""convkit.info(): what is installed and built here."""
from __future__ import annotations

import platform

import torch


def info() -> dict:
    from . import __version__
    from .backends import get_backend
    from .functional import available_backends

    compiled = get_backend("compiled")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    d = {
        "convkit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "compiled": compiled.build_info(),
        "backends": {dev: available_backends(dev) for dev in devices},
    }
    return d


def format_info(d: dict) -> str:
    c = d["compiled"]
    if c["built"]:
        built = f"built for {c['isa']} (-march {c['arch']}), CUDA {'yes' if c['cuda'] else 'no'}, {c['compiler']}"
    else:
        built = f"NOT built: {c['error']}"
    lines = [f"convkit {d['convkit']}  torch {d['torch']}  python {d['python']}",
             f"convkit._C: {built}",
             f"torch CPU capability: {d['cpu_capability']}; threads: {d['threads']}"]
    lines += [f"backends on {dev}: {', '.join(names)}" for dev, names in d["backends"].items()]
    return "\n".join(lines)
