// kernelwright fast load_inline: typed trampolines generated from a function's address.
//
// For `torch::Tensor relu_cuda(torch::Tensor x)` the generated bindings hold
//
//   extern "C" int32_t kw_inline_fn_0_relu_cuda(const KwArg* a, int64_t n, const KwSink* s, void** r) {
//     return kw_inline::invoke(&relu_cuda, "relu_cuda", a, n, s, r);
//   }
//
// and the templates below deduce the parameter and return types from `&relu_cuda`,
// convert each KwArg to its parameter type and the result to a Python object.
// A parameter or return type with no conversion fails at compile time with
// KW_UNSUPPORTED_SIGNATURE in the message; the loader then hands the candidate
// to stock torch load_inline, which binds it with pybind11.
#pragma once

#include <kw_inline/abi.h>

#include <ATen/core/Tensor.h>
#include <c10/core/Scalar.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// Helpers stay private to each candidate's .so; only the trampolines are exported.
#pragma GCC visibility push(hidden)
namespace kw_inline {

template <typename T>
inline constexpr bool kw_false = false;

struct ArgError {
  std::string message;
};

inline const char* tag_name(int32_t tag) {
  switch (tag) {
    case KW_NONE: return "None";
    case KW_TENSOR: return "Tensor";
    case KW_INT: return "int";
    case KW_DOUBLE: return "float";
    case KW_BOOL: return "bool";
    case KW_INT_LIST: return "list[int]";
    case KW_DOUBLE_LIST: return "list[float]";
    case KW_TENSOR_LIST: return "list[Tensor]";
    case KW_STR: return "str";
    default: return "unknown";
  }
}

[[noreturn]] inline void mismatch(const KwArg& a, const char* want) {
  throw ArgError{std::string("expected ") + want + ", got " + tag_name(a.tag)};
}

// ---- arguments: KwArg -> parameter type ------------------------------------
template <typename T, typename = void>
struct Caster {
  static_assert(kw_false<T>,
                "KW_UNSUPPORTED_SIGNATURE: kernelwright fast load_inline has no conversion for this parameter type");
};

template <>
struct Caster<at::Tensor> {
  static constexpr const char* name = "Tensor";
  static at::Tensor get(const KwArg& a) {
    if (a.tag != KW_TENSOR) mismatch(a, name);
    return *static_cast<const at::Tensor*>(a.p);
  }
};

template <>
struct Caster<bool> {
  static constexpr const char* name = "bool";
  static bool get(const KwArg& a) {  // like pybind11's bool caster in convert mode
    switch (a.tag) {
      case KW_BOOL:
      case KW_INT: return a.i != 0;
      case KW_DOUBLE: return a.d != 0.0;
      case KW_NONE: return false;
      default: mismatch(a, name);
    }
  }
};

template <typename T>
struct Caster<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static constexpr const char* name = "int";
  static T get(const KwArg& a) {
    if (a.tag != KW_INT && a.tag != KW_BOOL) mismatch(a, name);  // pybind11 takes bools as ints too
    if constexpr (sizeof(T) < sizeof(int64_t) || std::is_unsigned_v<T>) {
      if (a.i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          (a.i > 0 && static_cast<uint64_t>(a.i) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
        throw ArgError{"integer " + std::to_string(a.i) + " out of range for the parameter type"};
      }
    }
    return static_cast<T>(a.i);
  }
};

template <typename T>
struct Caster<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static constexpr const char* name = "float";
  static T get(const KwArg& a) {
    if (a.tag == KW_DOUBLE || a.tag == KW_INT || a.tag == KW_BOOL) return static_cast<T>(a.d);
    mismatch(a, name);
  }
};

template <>
struct Caster<c10::Scalar> {
  static constexpr const char* name = "number";
  static c10::Scalar get(const KwArg& a) {
    switch (a.tag) {
      case KW_BOOL: return c10::Scalar(a.i != 0);
      case KW_INT: return c10::Scalar(static_cast<int64_t>(a.i));
      case KW_DOUBLE: return c10::Scalar(a.d);
      default: mismatch(a, name);
    }
  }
};

template <>
struct Caster<std::string> {
  static constexpr const char* name = "str";
  static std::string get(const KwArg& a) {
    if (a.tag != KW_STR) mismatch(a, name);
    return std::string(static_cast<const char*>(a.p), static_cast<size_t>(a.i));
  }
};

template <>
struct Caster<std::string_view> {
  static constexpr const char* name = "str";
  static std::string_view get(const KwArg& a) {
    if (a.tag != KW_STR) mismatch(a, name);
    return std::string_view(static_cast<const char*>(a.p), static_cast<size_t>(a.i));
  }
};

template <typename T>
struct Caster<std::optional<T>> {
  static constexpr const char* name = "Optional";
  static std::optional<T> get(const KwArg& a) {
    if (a.tag == KW_NONE) return std::nullopt;
    return Caster<T>::get(a);
  }
};

// Lists: an empty Python list arrives as an empty KW_INT_LIST and fits any list type.
template <typename E>
inline std::vector<E> list_values(const KwArg& a, const char* want) {
  std::vector<E> out;
  const bool empty = a.i == 0 && (a.tag == KW_INT_LIST || a.tag == KW_DOUBLE_LIST || a.tag == KW_TENSOR_LIST);
  if (empty) return out;
  if constexpr (std::is_same_v<E, at::Tensor>) {
    if (a.tag != KW_TENSOR_LIST) mismatch(a, want);
    auto* p = static_cast<const at::Tensor*>(a.p);
    out.assign(p, p + a.i);
  } else if constexpr (std::is_floating_point_v<E>) {
    if (a.tag == KW_DOUBLE_LIST) {
      auto* p = static_cast<const double*>(a.p);
      for (int64_t k = 0; k < a.i; ++k) out.push_back(static_cast<E>(p[k]));
    } else if (a.tag == KW_INT_LIST) {
      auto* p = static_cast<const int64_t*>(a.p);
      for (int64_t k = 0; k < a.i; ++k) out.push_back(static_cast<E>(p[k]));
    } else {
      mismatch(a, want);
    }
  } else {
    if (a.tag != KW_INT_LIST) mismatch(a, want);
    auto* p = static_cast<const int64_t*>(a.p);
    for (int64_t k = 0; k < a.i; ++k) out.push_back(static_cast<E>(p[k]));
  }
  return out;
}

template <typename E>
struct Caster<std::vector<E>, std::enable_if_t<std::is_arithmetic_v<E> || std::is_same_v<E, at::Tensor>>> {
  static constexpr const char* name = "list";
  static std::vector<E> get(const KwArg& a) { return list_values<E>(a, "list"); }
};

template <>
struct Caster<c10::ArrayRef<int64_t>> {
  static constexpr const char* name = "list[int]";
  static c10::ArrayRef<int64_t> get(const KwArg& a) {
    if (a.tag == KW_INT_LIST) return c10::ArrayRef<int64_t>(static_cast<const int64_t*>(a.p), static_cast<size_t>(a.i));
    if ((a.tag == KW_DOUBLE_LIST || a.tag == KW_TENSOR_LIST) && a.i == 0) return {};
    mismatch(a, name);
  }
};

template <>
struct Caster<c10::ArrayRef<double>> {
  static constexpr const char* name = "list[float]";
  static c10::ArrayRef<double> get(const KwArg& a) {
    if (a.tag == KW_DOUBLE_LIST) return c10::ArrayRef<double>(static_cast<const double*>(a.p), static_cast<size_t>(a.i));
    if ((a.tag == KW_INT_LIST || a.tag == KW_TENSOR_LIST) && a.i == 0) return {};
    mismatch(a, name);
  }
};

template <>
struct Caster<c10::ArrayRef<at::Tensor>> {
  static constexpr const char* name = "list[Tensor]";
  static c10::ArrayRef<at::Tensor> get(const KwArg& a) {
    if (a.tag == KW_TENSOR_LIST) return c10::ArrayRef<at::Tensor>(static_cast<const at::Tensor*>(a.p), static_cast<size_t>(a.i));
    if ((a.tag == KW_INT_LIST || a.tag == KW_DOUBLE_LIST) && a.i == 0) return {};
    mismatch(a, name);
  }
};

// ---- results: value -> new Python reference ----------------------------------
template <typename T, typename = void>
struct Returner {
  static_assert(kw_false<T>,
                "KW_UNSUPPORTED_SIGNATURE: kernelwright fast load_inline has no conversion for this return type");
};

template <>
struct Returner<at::Tensor> {
  static void* make(const at::Tensor& v, const KwSink* s) { return s->from_tensor(&v); }
};

template <>
struct Returner<bool> {
  static void* make(bool v, const KwSink* s) { return s->from_bool(v ? 1 : 0); }
};

template <typename T>
struct Returner<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static void* make(T v, const KwSink* s) { return s->from_int(static_cast<int64_t>(v)); }
};

template <typename T>
struct Returner<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static void* make(T v, const KwSink* s) { return s->from_double(static_cast<double>(v)); }
};

template <>
struct Returner<std::string> {
  static void* make(const std::string& v, const KwSink* s) {
    return s->from_str(v.data(), static_cast<int64_t>(v.size()));
  }
};

template <>
struct Returner<c10::Scalar> {
  static void* make(const c10::Scalar& v, const KwSink* s) {
    if (v.isBoolean()) return s->from_bool(v.toBool() ? 1 : 0);
    if (v.isIntegral(false)) return s->from_int(v.toLong());
    if (v.isFloatingPoint()) return s->from_double(v.toDouble());
    s->set_error(KW_ERR_RUNTIME, "kernelwright fast load_inline: cannot return a complex or symbolic Scalar");
    return nullptr;
  }
};

template <typename T>
struct Returner<std::optional<T>> {
  static void* make(const std::optional<T>& v, const KwSink* s) {
    return v.has_value() ? Returner<std::decay_t<T>>::make(*v, s) : s->none();
  }
};

template <typename E>
struct Returner<std::vector<E>> {
  static void* make(const std::vector<E>& v, const KwSink* s) {
    void* list = s->new_list(static_cast<int64_t>(v.size()));
    if (!list) return nullptr;
    for (size_t k = 0; k < v.size(); ++k) {
      void* item = Returner<std::decay_t<E>>::make(v[k], s);
      if (!item || s->set_item(list, static_cast<int64_t>(k), item) != 0) {
        s->decref(list);
        return nullptr;
      }
    }
    return list;
  }
};

template <typename Tuple, size_t... I>
inline void* make_tuple(const Tuple& t, const KwSink* s, std::index_sequence<I...>) {
  void* tuple = s->new_tuple(static_cast<int64_t>(sizeof...(I)));
  if (!tuple) return nullptr;
  bool ok = true;
  auto put = [&](size_t k, void* item) {
    if (!ok) {
      if (item) s->decref(item);
      return;
    }
    if (!item || s->set_item(tuple, static_cast<int64_t>(k), item) != 0) ok = false;
  };
  (put(I, Returner<std::decay_t<std::tuple_element_t<I, Tuple>>>::make(std::get<I>(t), s)), ...);
  if (!ok) {
    s->decref(tuple);
    return nullptr;
  }
  return tuple;
}

template <typename... T>
struct Returner<std::tuple<T...>> {
  static void* make(const std::tuple<T...>& v, const KwSink* s) {
    return make_tuple(v, s, std::index_sequence_for<T...>{});
  }
};

template <typename A, typename B>
struct Returner<std::pair<A, B>> {
  static void* make(const std::pair<A, B>& v, const KwSink* s) {
    return make_tuple(v, s, std::index_sequence<0, 1>{});
  }
};

// ---- the call -----------------------------------------------------------------
template <typename F>
struct Invoker;

template <typename R, typename... A>
struct Invoker<R (*)(A...)> {
  static constexpr int64_t arity = sizeof...(A);

  template <size_t I>
  using Param = std::decay_t<std::tuple_element_t<I, std::tuple<A...>>>;

  template <size_t I>
  static Param<I> convert(const KwArg* args) {
    try {
      return Caster<Param<I>>::get(args[I]);
    } catch (ArgError& e) {
      throw ArgError{"argument " + std::to_string(I + 1) + ": " + e.message};
    }
  }

  template <size_t... I>
  static void* run(R (*fn)(A...), const KwArg* args, const KwSink* s, std::index_sequence<I...>) {
    // Braced init: conversions run left to right; each value lives until the call returns.
    std::tuple<std::decay_t<A>...> values{convert<I>(args)...};
    (void)values;
    if constexpr (std::is_void_v<R>) {
      fn(static_cast<A&&>(std::get<I>(values))...);
      return s->none();
    } else {
      decltype(auto) out = fn(static_cast<A&&>(std::get<I>(values))...);
      return Returner<std::decay_t<R>>::make(out, s);
    }
  }
};

template <typename R, typename... A>
struct Invoker<R (*)(A...) noexcept> : Invoker<R (*)(A...)> {};

template <typename F>
inline int32_t invoke(F fn, const char* name, const KwArg* args, int64_t nargs, const KwSink* s, void** result) {
  using Inv = Invoker<F>;
  if (s->abi_version != KW_INLINE_ABI_VERSION) {
    s->set_error(KW_ERR_RUNTIME, "kernelwright fast load_inline: bridge and trampoline ABI versions differ");
    return 1;
  }
  if (nargs != Inv::arity) {
    std::string msg = std::string(name) + "() takes " + std::to_string(Inv::arity) + " positional argument(s) but " +
                      std::to_string(nargs) + " were given";
    s->set_error(KW_ERR_TYPE, msg.c_str());
    return 1;
  }
  try {
    void* out = Inv::run(fn, args, s, std::make_index_sequence<static_cast<size_t>(Inv::arity)>{});
    if (!out) return 1;  // a sink call failed; its Python error is set
    *result = out;
    return 0;
  } catch (const ArgError& e) {
    std::string msg = std::string(name) + "(): incompatible function arguments: " + e.message;
    s->set_error(KW_ERR_TYPE, msg.c_str());
    return 1;
  } catch (...) {
    std::exception_ptr error = std::current_exception();
    s->raise_exception(&error);
    return 1;
  }
}

}  // namespace kw_inline
#pragma GCC visibility pop
