"""`kernelwright bench`: KernelBench-format problems run through the main job, and the field's table.

`problems` finds the problems under the paths a user names; `runner` deals them to lanes (one per GPU) and
keeps one result file per problem (`rows`), so a stopped bench resumes; each problem is solved by
`full_job` (the agent graph of `kernelwright run`, in a child process per problem: `child`) or, on a machine
without a GPU, by `translate_only` (the offline translator and nvcc). `table` computes the per-level figures
(fast_p, medians, geometric means), `markdown` and eval/report/bench_page write them, and `bench` ties it
together for the front door.
"""
