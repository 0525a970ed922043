// kernelwright fast load_inline: the C ABI between the prebuilt Python bridge
// and the per-candidate trampolines.
//
// The bridge turns Python arguments into an array of KwArg (tensors are passed
// as pointers to the at::Tensor held by each Python object, valid for the call),
// calls the candidate's `extern "C"` trampoline, and gets back a new Python
// reference built through the KwSink callbacks. Everything runs with the GIL held.
#pragma once

#include <cstddef>
#include <cstdint>

#define KW_INLINE_ABI_VERSION 1

extern "C" {

enum KwTag : int32_t {
  KW_NONE = 0,
  KW_TENSOR = 1,       // p: const at::Tensor*
  KW_INT = 2,          // i (d holds the same value as a double)
  KW_DOUBLE = 3,       // d
  KW_BOOL = 4,         // i: 0 or 1
  KW_INT_LIST = 5,     // p: const int64_t*, i: length
  KW_DOUBLE_LIST = 6,  // p: const double*, i: length
  KW_TENSOR_LIST = 7,  // p: const at::Tensor* (contiguous array), i: length
  KW_STR = 8,          // p: const char* (UTF-8), i: length in bytes
};

struct KwArg {
  int32_t tag;
  int32_t reserved;
  int64_t i;
  double d;
  const void* p;
};

enum KwErrorKind : int32_t {
  KW_ERR_TYPE = 1,     // argument conversion failed -> TypeError
  KW_ERR_RUNTIME = 2,  // -> RuntimeError
};

// Builders for results. Each returns a new reference, or NULL with a Python
// error set. `set_item` steals `item` (also on failure).
struct KwSink {
  int32_t abi_version;
  void* (*none)(void);
  void* (*from_tensor)(const void* tensor);  // const at::Tensor*; an undefined tensor gives None
  void* (*from_int)(int64_t value);
  void* (*from_double)(double value);
  void* (*from_bool)(int32_t value);
  void* (*from_str)(const char* data, int64_t size);
  void* (*new_tuple)(int64_t size);
  void* (*new_list)(int64_t size);
  int32_t (*set_item)(void* seq, int64_t index, void* item);
  void (*decref)(void* obj);
  void (*set_error)(int32_t kind, const char* message);
  // Translates a C++ exception (a const std::exception_ptr*) into the Python
  // exception torch itself would raise (c10::Error -> RuntimeError, ...).
  void (*raise_exception)(const void* exception_ptr);
};

// Returns 0 and a new reference in *result, or nonzero with a Python error set.
typedef int32_t (*KwTrampoline)(const KwArg* args, int64_t nargs, const KwSink* sink, void** result);

}  // extern "C"
