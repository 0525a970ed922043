// kernelwright light shim for <torch/all.h>: torch's types and a light ATen
// prelude, without the autograd/nn frontends or pybind11.
#pragma once
#include <torch/types.h>
