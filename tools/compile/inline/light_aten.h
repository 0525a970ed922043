// kernelwright light ATen prelude: what LLM-written inline extensions use of
// <torch/extension.h>, at a fraction of its parse time. A build that needs more
// fails to compile and is retried with torch's real headers.
#pragma once

#define KW_INLINE_LIGHT_HEADERS 1

#include <ATen/core/Tensor.h>
#include <ATen/core/Generator.h>
#include <ATen/core/Reduction.h>
#include <ATen/Dispatch.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/Scalar.h>
#include <c10/core/ScalarType.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/Exception.h>
#include <c10/util/irange.h>

#include <kw_inline/device_of.h>
#include <kw_inline/light_ops.h>
#include <kw_inline/ops/TensorOperators.h>

#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>
