"""Build convkit and its extension convkit._C (C++ always; CUDA when a CUDA toolchain and a CUDA torch exist).

Environment:
  CONVKIT_ARCH=native (default) | portable | <any -march value>   CPU ISA the kernels are compiled for
  DEBUG=1                      -O0 -g instead of -O3
  CONVKIT_SANITIZE=address,undefined   add -fsanitize=... (with DEBUG=1; run with LD_PRELOAD=$(gcc -print-file-name=libasan.so))
  CONVKIT_NO_EXT=1             skip the extension (pure Python package)
  TORCH_CUDA_ARCH_LIST         GPU architectures for the CUDA flavour (default: the GPU found)
  MAX_JOBS=2                   parallel compile jobs (ninja)
"""
import glob
import os

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def extensions():
    if os.environ.get("CONVKIT_NO_EXT") == "1":
        print("convkit: CONVKIT_NO_EXT=1, building no extension")
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    debug = os.environ.get("DEBUG", "0") == "1"
    arch = os.environ.get("CONVKIT_ARCH", "native")
    march = {"native": "native", "portable": "x86-64-v2"}.get(arch, arch)
    cxx = ["-O0", "-g"] if debug else ["-O3"]
    cxx += [f"-march={march}", "-fopenmp", f'-DCONVKIT_ARCH="{arch}:{march}"']
    if march == "native":
        cxx.append("-mprefer-vector-width=512")  # gcc otherwise keeps 256-bit vectors on AVX-512 AMD cores
    link = ["-fopenmp"]  # resolves to torch's own libgomp.so.1 at run time: one OpenMP runtime
    sanitize = os.environ.get("CONVKIT_SANITIZE")
    if sanitize:
        cxx += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"]
        link += [f"-fsanitize={sanitize}"]

    sources = _sources("csrc/*.cpp") + _sources("csrc/cpu/*.cpp")
    cuda_sources = _sources("csrc/cuda/*.cu")
    use_cuda = bool(cuda_sources) and torch.version.cuda is not None and CUDA_HOME is not None
    if use_cuda:
        flavour = f"CPU + CUDA {torch.version.cuda} (arch list: {os.environ.get('TORCH_CUDA_ARCH_LIST', 'the GPU found')})"
        ext = CUDAExtension("convkit._C", sources + cuda_sources,
                            extra_compile_args={"cxx": cxx + ["-DCONVKIT_WITH_CUDA"],
                                                "nvcc": ["-O3", "-lineinfo", "-DCONVKIT_WITH_CUDA"]},
                            extra_link_args=link)
    else:
        why = ("no csrc/cuda sources" if not cuda_sources else
               "torch is a CPU build" if torch.version.cuda is None else "no CUDA toolchain (CUDA_HOME)")
        flavour = f"CPU only ({why})"
        ext = CppExtension("convkit._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link)
    print(f"convkit: building convkit._C, {flavour}; -march={march}{', DEBUG' if debug else ''}"
          f"{', sanitize=' + sanitize if sanitize else ''}")
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extensions()
setup(
    name="convkit",
    version="0.1.0",
    description="2-D convolution (cross-correlation) and pooling kernels for PyTorch with interchangeable backends",
    packages=find_packages(include=["convkit", "convkit.*"]),
    python_requires=">=3.9",
    install_requires=["torch", "numpy"],
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
