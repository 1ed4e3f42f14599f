// The Python module convkit._C. The ops themselves are registered with the dispatcher
// (TORCH_LIBRARY in ops.cpp, TORCH_LIBRARY_IMPL in cpu/ and cuda/) when this library is loaded;
// the module only reports how it was built. Plain CPython API: no pybind11 compile cost.
#include <Python.h>

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

static PyMethodDef methods[] = {
    {"build_info", build_info, METH_NOARGS, "How convkit._C was built: ISA, -march, CUDA."},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module); }
