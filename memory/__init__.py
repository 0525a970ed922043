"""kernelwright.memory: the kernel archive (a Chroma store of evaluated kernels, retrieved as prompt examples).

Entry points: `archive.KernelArchive` (open_local / open_server), `prompting.examples_for_prompt`
and `prompting.archive_run` for the graph, `records.ArchiveRecord` for the data. Importing this
package imports nothing heavy; chromadb loads with `archive` / `embedding`.
"""
