// kernelwright light shim: at::device_of for tensors, as <ATen/DeviceGuard.h> has it,
// without the ITensorListRef overload (whose IListRef header costs seconds to parse).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace at {

inline std::optional<Device> device_of(const Tensor& t) {
  if (t.defined()) {
    return t.device();
  }
  return std::nullopt;
}

inline std::optional<Device> device_of(const std::optional<Tensor>& t) {
  return t.has_value() ? device_of(t.value()) : std::nullopt;
}

}  // namespace at
