// kernelwright fast load_inline: the Python bridge, built once per (torch, Python).
//
// `make_function(name, address, owner, doc)` wraps a candidate's `extern "C"`
// trampoline (see kw_abi.h) in a vectorcall object. A call converts its
// positional arguments to KwArg without copying tensors (each KwArg points at
// the at::Tensor its Python object holds), runs the trampoline under torch's
// own error and warning handling (HANDLE_TH_ERRORS), and returns what the
// trampoline built through the KwSink callbacks. `owner` (the loaded library)
// is kept alive as long as the function object is.
#include <Python.h>

#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <kw_inline/abi.h>

#include <exception>
#include <vector>

namespace {

// ---- sink: results back to Python -------------------------------------------
void* sink_none() { Py_RETURN_NONE; }

void* sink_from_tensor(const void* t) {
  try {
    return THPVariable_Wrap(*static_cast<const at::Tensor*>(t));
  } catch (...) {
    torch::translate_exception_to_python(std::current_exception());
    return nullptr;
  }
}

void* sink_from_int(int64_t v) { return PyLong_FromLongLong(v); }
void* sink_from_double(double v) { return PyFloat_FromDouble(v); }
void* sink_from_bool(int32_t v) { return PyBool_FromLong(v); }
void* sink_from_str(const char* data, int64_t size) { return PyUnicode_FromStringAndSize(data, size); }
void* sink_new_tuple(int64_t n) { return PyTuple_New(n); }
void* sink_new_list(int64_t n) { return PyList_New(n); }

int32_t sink_set_item(void* seq, int64_t k, void* item) {
  PyObject* s = static_cast<PyObject*>(seq);
  if (PyTuple_Check(s)) {
    PyTuple_SET_ITEM(s, k, static_cast<PyObject*>(item));
  } else {
    PyList_SET_ITEM(s, k, static_cast<PyObject*>(item));
  }
  return 0;
}

void sink_decref(void* obj) { Py_XDECREF(static_cast<PyObject*>(obj)); }

void sink_set_error(int32_t kind, const char* message) {
  PyErr_SetString(kind == KW_ERR_TYPE ? PyExc_TypeError : PyExc_RuntimeError, message);
}

void sink_raise_exception(const void* error) {
  try {
    std::rethrow_exception(*static_cast<const std::exception_ptr*>(error));
  } catch (const std::exception&) {
    torch::translate_exception_to_python(std::current_exception());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception (not derived from std::exception)");
  }
}

const KwSink kSink = {
    KW_INLINE_ABI_VERSION, sink_none,      sink_from_tensor, sink_from_int, sink_from_double,
    sink_from_bool,        sink_from_str,  sink_new_tuple,   sink_new_list, sink_set_item,
    sink_decref,           sink_set_error, sink_raise_exception,
};

// ---- arguments: Python -> KwArg ---------------------------------------------
struct ListStore {
  std::vector<std::vector<int64_t>> ints;
  std::vector<std::vector<double>> doubles;
  std::vector<std::vector<at::Tensor>> tensors;
};

bool is_int_like(PyObject* o) { return PyLong_Check(o) || (!PyFloat_Check(o) && PyIndex_Check(o)); }

// Returns false with a Python error set.
bool convert_list(PyObject* seq, KwArg& a, ListStore& store, Py_ssize_t position) {
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject** items = PySequence_Fast_ITEMS(seq);
  a.i = n;
  if (n == 0) {
    a.tag = KW_INT_LIST;
    a.p = nullptr;
    return true;
  }
  bool all_tensors = true, all_ints = true, all_numbers = true;
  for (Py_ssize_t k = 0; k < n; ++k) {
    PyObject* o = items[k];
    const bool tensor = THPVariable_Check(o);
    const bool integer = !tensor && is_int_like(o);
    const bool number = integer || (!tensor && PyFloat_Check(o));
    all_tensors &= tensor;
    all_ints &= integer;
    all_numbers &= number;
  }
  if (all_tensors) {
    auto& v = store.tensors.emplace_back();
    v.reserve(n);
    for (Py_ssize_t k = 0; k < n; ++k) v.push_back(THPVariable_Unpack(items[k]));
    a.tag = KW_TENSOR_LIST;
    a.p = v.data();
    return true;
  }
  if (all_ints) {
    auto& v = store.ints.emplace_back(n);
    for (Py_ssize_t k = 0; k < n; ++k) {
      v[k] = PyLong_AsLongLong(items[k]);
      if (v[k] == -1 && PyErr_Occurred()) return false;
    }
    a.tag = KW_INT_LIST;
    a.p = v.data();
    return true;
  }
  if (all_numbers) {
    auto& v = store.doubles.emplace_back(n);
    for (Py_ssize_t k = 0; k < n; ++k) {
      v[k] = PyFloat_AsDouble(items[k]);
      if (v[k] == -1.0 && PyErr_Occurred()) return false;
    }
    a.tag = KW_DOUBLE_LIST;
    a.p = v.data();
    return true;
  }
  PyErr_Format(PyExc_TypeError,
               "argument %zd: a list must hold only tensors or only numbers", position + 1);
  return false;
}

bool convert_arg(PyObject* o, KwArg& a, ListStore& store, Py_ssize_t position) {
  a.reserved = 0;
  a.i = 0;
  a.d = 0.0;
  a.p = nullptr;
  if (THPVariable_Check(o)) {
    a.tag = KW_TENSOR;
    a.p = &THPVariable_Unpack(o);
    return true;
  }
  if (o == Py_None) {
    a.tag = KW_NONE;
    return true;
  }
  if (PyBool_Check(o)) {
    a.tag = KW_BOOL;
    a.i = (o == Py_True);
    a.d = static_cast<double>(a.i);
    return true;
  }
  if (is_int_like(o)) {
    a.tag = KW_INT;
    a.i = PyLong_AsLongLong(o);
    if (a.i == -1 && PyErr_Occurred()) return false;
    a.d = static_cast<double>(a.i);
    return true;
  }
  if (PyFloat_Check(o)) {
    a.tag = KW_DOUBLE;
    a.d = PyFloat_AS_DOUBLE(o);
    return true;
  }
  if (PyUnicode_Check(o)) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(o, &size);
    if (!data) return false;
    a.tag = KW_STR;
    a.p = data;
    a.i = size;
    return true;
  }
  if (PyList_Check(o) || PyTuple_Check(o)) {  // torch.Size is a tuple
    return convert_list(o, a, store, position);
  }
  if (PyNumber_Check(o) && Py_TYPE(o)->tp_as_number && Py_TYPE(o)->tp_as_number->nb_float) {
    a.tag = KW_DOUBLE;  // e.g. numpy.float32
    a.d = PyFloat_AsDouble(o);
    return !(a.d == -1.0 && PyErr_Occurred());
  }
  PyErr_Format(PyExc_TypeError, "argument %zd: unsupported type %s", position + 1, Py_TYPE(o)->tp_name);
  return false;
}

// ---- the function object -------------------------------------------------------
struct KwFunction {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  KwTrampoline fn;
  PyObject* name;
  PyObject* owner;
  PyObject* doc;
};

PyObject* call_trampoline(KwFunction* f, PyObject* const* args, Py_ssize_t n) {
  HANDLE_TH_ERRORS
  constexpr Py_ssize_t kSmall = 16;
  KwArg small[kSmall];
  std::vector<KwArg> big;
  KwArg* argv = small;
  if (n > kSmall) {
    big.resize(n);
    argv = big.data();
  }
  ListStore store;
  for (Py_ssize_t k = 0; k < n; ++k) {
    if (!convert_arg(args[k], argv[k], store, k)) {
      __enforce_warning_buffer.set_in_exception();
      return nullptr;
    }
  }
  void* result = nullptr;
  if (f->fn(argv, n, &kSink, &result) != 0) {
    __enforce_warning_buffer.set_in_exception();
    return nullptr;
  }
  return static_cast<PyObject*>(result);
  END_HANDLE_TH_ERRORS
}

PyObject* kwfunction_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* f = reinterpret_cast<KwFunction*>(self);
  if (kwnames && PyTuple_GET_SIZE(kwnames) > 0) {
    PyErr_Format(PyExc_TypeError, "%U() takes no keyword arguments", f->name);
    return nullptr;
  }
  return call_trampoline(f, args, PyVectorcall_NARGS(nargsf));
}

void kwfunction_dealloc(PyObject* self) {
  auto* f = reinterpret_cast<KwFunction*>(self);
  PyObject_GC_UnTrack(self);
  Py_CLEAR(f->name);
  Py_CLEAR(f->owner);
  Py_CLEAR(f->doc);
  Py_TYPE(self)->tp_free(self);
}

int kwfunction_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* f = reinterpret_cast<KwFunction*>(self);
  Py_VISIT(f->owner);
  return 0;
}

int kwfunction_clear(PyObject* self) {
  Py_CLEAR(reinterpret_cast<KwFunction*>(self)->owner);
  return 0;
}

PyObject* kwfunction_repr(PyObject* self) {
  return PyUnicode_FromFormat("<kernelwright inline function %U>", reinterpret_cast<KwFunction*>(self)->name);
}

PyObject* kwfunction_get_name(PyObject* self, void*) {
  PyObject* name = reinterpret_cast<KwFunction*>(self)->name;
  Py_INCREF(name);
  return name;
}

PyObject* kwfunction_get_doc(PyObject* self, void*) {
  PyObject* doc = reinterpret_cast<KwFunction*>(self)->doc;
  Py_INCREF(doc);
  return doc;
}

PyGetSetDef kwfunction_getset[] = {
    {"__name__", kwfunction_get_name, nullptr, nullptr, nullptr},
    {"__qualname__", kwfunction_get_name, nullptr, nullptr, nullptr},
    {"__doc__", kwfunction_get_doc, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject KwFunctionType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyObject* make_function(PyObject*, PyObject* args) {
  PyObject* name = nullptr;
  unsigned long long address = 0;
  PyObject* owner = nullptr;
  PyObject* doc = nullptr;
  if (!PyArg_ParseTuple(args, "UKOO", &name, &address, &owner, &doc)) return nullptr;
  if (address == 0) {
    PyErr_SetString(PyExc_ValueError, "make_function: null trampoline address");
    return nullptr;
  }
  auto* f = PyObject_GC_New(KwFunction, &KwFunctionType);
  if (!f) return nullptr;
  f->vectorcall = kwfunction_vectorcall;
  f->fn = reinterpret_cast<KwTrampoline>(static_cast<uintptr_t>(address));
  Py_INCREF(name);
  f->name = name;
  Py_INCREF(owner);
  f->owner = owner;
  Py_INCREF(doc);
  f->doc = doc;
  PyObject_GC_Track(reinterpret_cast<PyObject*>(f));
  return reinterpret_cast<PyObject*>(f);
}

PyObject* abi_version(PyObject*, PyObject*) { return PyLong_FromLong(KW_INLINE_ABI_VERSION); }

PyMethodDef module_methods[] = {
    {"make_function", make_function, METH_VARARGS,
     "make_function(name, address, owner, doc) -> callable wrapping an extern \"C\" trampoline"},
    {"abi_version", abi_version, METH_NOARGS, "the KwArg/KwSink ABI version this bridge speaks"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "kernelwright_inline_bridge",
                          "kernelwright fast load_inline bridge", -1, module_methods};

}  // namespace

PyMODINIT_FUNC PyInit_kernelwright_inline_bridge() {
  KwFunctionType.tp_name = "kernelwright_inline_bridge.Function";
  KwFunctionType.tp_basicsize = sizeof(KwFunction);
  KwFunctionType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL;
  KwFunctionType.tp_vectorcall_offset = offsetof(KwFunction, vectorcall);
  KwFunctionType.tp_call = PyVectorcall_Call;
  KwFunctionType.tp_dealloc = kwfunction_dealloc;
  KwFunctionType.tp_traverse = kwfunction_traverse;
  KwFunctionType.tp_clear = kwfunction_clear;
  KwFunctionType.tp_repr = kwfunction_repr;
  KwFunctionType.tp_getset = kwfunction_getset;
  if (PyType_Ready(&KwFunctionType) < 0) return nullptr;
  return PyModule_Create(&module_def);
}
