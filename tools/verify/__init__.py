"""The rules a candidate is judged by, as plain functions over tensors and traces.

`compare` checks outputs against the reference within a tolerance (chunked, on the GPU) and `precision`
says which backend flags and tolerances apply; `fingerprint` tells whether outputs or inputs repeat or
changed without a second copy; `gpu_memory` poisons the allocator's free memory so unwritten outputs
cannot pass; `floors` is the physical floor no honest timing beats; `kernel_trace` records what a call
ran on the GPU and `integrity` turns that into named rejections. Both the sandbox workers and the harness
use these.
"""
