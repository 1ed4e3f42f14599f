// The Python module convkit._C. The ops themselves are registered with the dispatcher
// (TORCH_LIBRARY in ops.cpp, TORCH_LIBRARY_IMPL in cpu/, cuda/ and autograd.cpp) when this library is loaded;
// the module reports how it was built and has the eager entry points below. Plain CPython API
// (no pybind11 compile cost).
//
// corr2d_eager / pool2d_eager: convkit.functional's fast path for eager calls on plain CPU tensors, which
// skips torch.ops' Python layer (OpOverload, about 6-8 us per call here against about 1 us for this path).
//   - No gradient needed and no Python dispatch mode active: the CPU forward kernel, called directly (no
//     dispatcher, and pool2d writes no indices).
//   - Otherwise: the op through the C++ dispatcher, so its autograd (autograd.cpp) records the graph and any
//     TorchDispatchMode sees the call.
// They are skipped under torch.compile and torch function modes (checked in Python). Where they do not apply
// they return NotImplemented and convkit.functional falls back to its checked path, which reports any error
// with a message naming the argument.
#include <Python.h>
#include <ATen/core/grad_mode.h>
#include <cstring>
#include <string>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/autograd/python_variable.h>

#include "common.h"
#include "cpu/kernels.h"
#include "cpu/output_cache.h"
#include "dispatch.h"

#ifndef CONVKIT_ARCH
#define CONVKIT_ARCH "unknown"
#endif

static PyObject* build_info(PyObject*, PyObject*) {
  const char* isa =
#if defined(__AVX512F__)
      "AVX512";
#elif defined(__AVX2__)
      "AVX2";
#elif defined(__SSE4_2__)
      "SSE4.2";
#else
      "baseline";
#endif
#ifdef CONVKIT_WITH_CUDA
  PyObject* cuda = Py_True;
#else
  PyObject* cuda = Py_False;
#endif
  return Py_BuildValue("{s:s,s:s,s:O,s:s}", "isa", isa, "arch", CONVKIT_ARCH, "cuda", cuda,
                       "compiler", __VERSION__);
}

// ---- eager entry points. They return NotImplemented whenever they do not apply (not a plain
// CPU tensor, arguments not exact ints / pairs, or any error from the kernel's checks), and
// convkit.functional then takes its checked path, which raises the user-facing error.

// An exact Python int (not bool) into v.
static bool py_int(PyObject* o, int64_t& v) {
  if (!PyLong_CheckExact(o)) return false;
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (overflow || (x == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  v = x;
  return true;
}

// An int (repeated n_scalar times, if n_scalar > 0) or a tuple / list of exactly one of the lengths n1, n2
// (n2 == 0: none); *len gets the length read.
static bool py_ints(PyObject* o, int64_t* v, int n_scalar, int n1, int n2, int* len) {
  if (PyLong_CheckExact(o)) {
    if (n_scalar == 0 || !py_int(o, v[0])) return false;
    for (int i = 1; i < n_scalar; ++i) v[i] = v[0];
    *len = n_scalar;
    return true;
  }
  if (!PyTuple_CheckExact(o) && !PyList_CheckExact(o)) return false;
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
  if (n != n1 && (n2 == 0 || n != n2)) return false;
  PyObject** items = PySequence_Fast_ITEMS(o);
  for (Py_ssize_t i = 0; i < n; ++i)
    if (!py_int(items[i], v[i])) return false;
  *len = static_cast<int>(n);
  return true;
}

// A plain strided 4-d floating CPU tensor (or nn.Parameter).
static bool eager_cpu_tensor(PyObject* o) {
  if (!THPVariable_Check(o)) return false;
  const at::Tensor& t = THPVariable_Unpack(o);
  return t.defined() && t.device().is_cpu() && t.layout() == at::kStrided && t.dim() == 4 && t.is_floating_point();
}

static bool needs_grad(const at::Tensor& t) { return t.requires_grad() && at::GradMode::is_enabled(); }

// Whether the call must go through the dispatcher (autograd, or a TorchDispatchMode watching) rather than
// straight to the CPU kernel.
static bool via_dispatcher(bool grad) { return grad || c10::impl::TorchDispatchModeTLS::stack_len() > 0; }

static PyObject* not_implemented() { Py_RETURN_NOTIMPLEMENTED; }

template <typename Fn>
static PyObject* or_not_implemented(const Fn& fn) {
  try {
    return THPVariable_Wrap(fn());
  } catch (const std::exception&) {  // c10::Error from the kernel's argument checks
    return not_implemented();
  }
}

// corr2d_eager(input, weight, bias | None, stride, padding, dilation, groups[, algo]) -> output | NotImplemented
// padding: int, (ph, pw) or (top, bottom, left, right).
static PyObject* corr2d_eager(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 7 && nargs != 8) return not_implemented();
  const char* algo = "auto";
  if (nargs == 8 && (!PyUnicode_CheckExact(args[7]) || !(algo = PyUnicode_AsUTF8(args[7])))) {
    PyErr_Clear();
    return not_implemented();
  }
  int64_t st[2], pad[4], dil[2], groups;
  int n = 0, npad = 0;
  if (!eager_cpu_tensor(args[0]) || !eager_cpu_tensor(args[1]) || !py_ints(args[3], st, 2, 2, 0, &n) ||
      !py_ints(args[4], pad, 4, 2, 4, &npad) || !py_ints(args[5], dil, 2, 2, 0, &n) || !py_int(args[6], groups))
    return not_implemented();
  if (npad == 2) {  // (ph, pw) -> (ph, ph, pw, pw)
    pad[2] = pad[3] = pad[1];
    pad[1] = pad[0];
  }
  c10::optional<at::Tensor> bias;
  if (args[2] != Py_None) {
    if (!THPVariable_Check(args[2])) return not_implemented();
    const at::Tensor& b = THPVariable_Unpack(args[2]);
    if (!b.device().is_cpu() || b.layout() != at::kStrided) return not_implemented();
    bias = b;
  }
  const at::Tensor &x = THPVariable_Unpack(args[0]), &w = THPVariable_Unpack(args[1]);
  if (via_dispatcher(needs_grad(x) || needs_grad(w) || (bias && needs_grad(*bias))))
    return or_not_implemented([&] { return convkit::corr2d_call(x, w, bias, st, pad, dil, groups, algo); });
  return or_not_implemented([&] { return convkit::corr2d_cpu(x, w, bias, st, pad, dil, groups, algo); });
}

// pool2d_eager(input, mode, kernel, stride | None, padding, dilation, ceil_mode, count_include_pad,
//              divisor_override | None) -> output (the indices stay inside autograd) | NotImplemented
static PyObject* pool2d_eager(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 9 || !eager_cpu_tensor(args[0]) || !PyUnicode_CheckExact(args[1])) return not_implemented();
  const char* mode = PyUnicode_AsUTF8(args[1]);
  int64_t ker[2], st[2], pad[2], dil[2], div = 0;
  int n = 0;
  if (!mode || !py_ints(args[2], ker, 2, 2, 0, &n) || !py_ints(args[4], pad, 2, 2, 0, &n) ||
      !py_ints(args[5], dil, 2, 2, 0, &n) || !PyBool_Check(args[6]) || !PyBool_Check(args[7]) ||
      (args[8] != Py_None && !py_int(args[8], div))) {
    PyErr_Clear();
    return not_implemented();
  }
  if (args[3] == Py_None) {
    st[0] = ker[0];
    st[1] = ker[1];
  } else if (!py_ints(args[3], st, 2, 2, 0, &n)) {
    return not_implemented();
  }
  if (args[8] != Py_None && (div == 0 || std::strcmp(mode, "avg") != 0)) return not_implemented();
  const c10::optional<int64_t> divisor = args[8] != Py_None ? c10::optional<int64_t>(div) : c10::nullopt;
  const at::Tensor& x = THPVariable_Unpack(args[0]);
  const bool ceil_mode = args[6] == Py_True, count_include_pad = args[7] == Py_True;
  const bool grad = needs_grad(x);
  if (via_dispatcher(grad))  // max keeps its indices only where backward will need them
    return or_not_implemented([&] {
      return std::get<0>(convkit::pool2d_call(x, mode, ker, st, pad, dil, ceil_mode, count_include_pad, divisor,
                                              grad && std::strcmp(mode, "max") == 0));
    });
  return or_not_implemented([&] {
    return convkit::pool2d_values_cpu(x, mode, ker, st, pad, dil, ceil_mode, count_include_pad, divisor);
  });
}

// corr2d_plan((N, C, H, W), (O, Cg, kh, kw), (sh, sw), (top, bottom, left, right), (dh, dw), groups, algo,
//             itemsize) -> [(direction algorithm, workspace bytes)] for forward, grad_input, grad_weight
// (convkit.explain); ValueError with the kernel's message when the arguments or the algo do not apply.
static PyObject* corr2d_plan(PyObject*, PyObject* args) {
  long long x[4], w[4], st[2], pad[4], dil[2], groups, itemsize;
  const char* algo;
  if (!PyArg_ParseTuple(args, "(LLLL)(LLLL)(LL)(LLLL)(LL)LsL", &x[0], &x[1], &x[2], &x[3], &w[0], &w[1], &w[2], &w[3],
                        &st[0], &st[1], &pad[0], &pad[1], &pad[2], &pad[3], &dil[0], &dil[1], &groups, &algo, &itemsize))
    return nullptr;
  try {
    const auto meta = at::TensorOptions().device(at::kMeta).dtype(at::kFloat);
    const at::Tensor xt = at::empty({x[0], x[1], x[2], x[3]}, meta), wt = at::empty({w[0], w[1], w[2], w[3]}, meta);
    const int64_t s2[2] = {st[0], st[1]}, p4[4] = {pad[0], pad[1], pad[2], pad[3]}, d2[2] = {dil[0], dil[1]};
    const convkit::ConvGeom g = convkit::conv_geometry(xt, wt, c10::nullopt, s2, p4, d2, groups);
    const auto plan = convkit::corr2d_plan_cpu(g, algo, itemsize);
    PyObject* list = PyList_New(0);
    for (const auto& e : plan) {
      PyObject* item = Py_BuildValue("(sL)", e.first.c_str(), static_cast<long long>(e.second));
      PyList_Append(list, item);
      Py_DECREF(item);
    }
    return list;
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    return nullptr;
  }
}

// cache_info() -> {cached_bytes, limit_bytes, hits, misses}; empty_cache() frees the cached blocks
// (cpu/output_cache.h).
static PyObject* cache_info(PyObject*, PyObject*) {
  convkit::CacheInfo c;
  try {
    c = convkit::cache_info();
  } catch (const c10::Error& e) {  // a bad CONVKIT_CPU_CACHE_MB
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  }
  return Py_BuildValue("{s:L,s:L,s:L,s:L}", "cached_bytes", static_cast<long long>(c.cached_bytes), "limit_bytes",
                       static_cast<long long>(c.limit_bytes), "hits", static_cast<long long>(c.hits), "misses",
                       static_cast<long long>(c.misses));
}

static PyObject* empty_cache(PyObject*, PyObject*) {
  try {
    convkit::empty_cache();
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  }
  Py_RETURN_NONE;
}

// fma_peak(iters) -> (GFLOP/s of register-only FMA chains on every thread, threads that ran them)
// (cpu/peak.cpp); the GIL is released.
static PyObject* fma_peak(PyObject*, PyObject* args) {
  long long iters;
  if (!PyArg_ParseTuple(args, "L", &iters)) return nullptr;
  if (iters < 1) {
    PyErr_SetString(PyExc_ValueError, "fma_peak: iters must be >= 1");
    return nullptr;
  }
  convkit::FmaPeak peak;
  Py_BEGIN_ALLOW_THREADS
  peak = convkit::fma_peak_gflops(iters);
  Py_END_ALLOW_THREADS
  return Py_BuildValue("(di)", peak.gflops, peak.threads_ran);
}

// blas_rate(measure=True) -> {share, preferred, source}: ATen's BLAS against the FMA peak, as make_plan sees it
// (cpu/peak.cpp; measured once per process unless CONVKIT_BLAS or set_blas_preference decides).
static PyObject* blas_rate(PyObject*, PyObject* args) {
  int measure = 1;
  if (!PyArg_ParseTuple(args, "|p", &measure)) return nullptr;
  convkit::BlasRate r{};
  std::string error;
  Py_BEGIN_ALLOW_THREADS
  try {
    r = convkit::blas_rate(measure != 0);
  } catch (const c10::Error& e) {  // a bad CONVKIT_BLAS
    error = e.what_without_backtrace();
  }
  Py_END_ALLOW_THREADS
  if (!error.empty()) {
    PyErr_SetString(PyExc_ValueError, error.c_str());
    return nullptr;
  }
  return Py_BuildValue("{s:d,s:O,s:s}", "share", r.share, "preferred", r.preferred ? Py_True : Py_False, "source",
                       r.source);
}

// set_blas_preference(mode): "prefer" | "avoid" BLAS in "auto", or "measure" (the default; tests and A/B runs).
static PyObject* set_blas_preference(PyObject*, PyObject* args) {
  const char* mode;
  if (!PyArg_ParseTuple(args, "s", &mode)) return nullptr;
  const int pref = std::strcmp(mode, "prefer") == 0 ? 1 : std::strcmp(mode, "avoid") == 0 ? 0
                   : std::strcmp(mode, "measure") == 0 ? -1 : -2;
  if (pref == -2) {
    PyErr_Format(PyExc_ValueError, "set_blas_preference: mode must be 'prefer', 'avoid' or 'measure', got '%s'", mode);
    return nullptr;
  }
  convkit::set_blas_preference(pref);
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"blas_rate", blas_rate, METH_VARARGS, "ATen's BLAS against the FMA peak as the CPU plans see it (cpu/peak.cpp)."},
    {"set_blas_preference", set_blas_preference, METH_VARARGS, "'prefer' | 'avoid' BLAS in algo='auto', or 'measure'."},
    {"fma_peak", fma_peak, METH_VARARGS, "(GFLOP/s of register-only fp32 FMA chains on every thread, threads that ran them) (cpu/peak.cpp)."},
    {"cache_info", cache_info, METH_NOARGS, "The CPU output cache: cached bytes, limit, hits, misses."},
    {"empty_cache", empty_cache, METH_NOARGS, "Free the CPU output cache's blocks."},
    {"build_info", build_info, METH_NOARGS, "How convkit._C was built: ISA, -march, CUDA."},
    {"corr2d_plan", corr2d_plan, METH_VARARGS, "The CPU algorithms and workspace of one corr2d call (see module.cpp)."},
    {"corr2d_eager", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(corr2d_eager)), METH_FASTCALL,
     "Eager CPU corr2d (with autograd where needed), or NotImplemented (see module.cpp)."},
    {"pool2d_eager", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(pool2d_eager)), METH_FASTCALL,
     "Eager CPU pool2d output (with autograd where needed), or NotImplemented (see module.cpp)."},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module); }
