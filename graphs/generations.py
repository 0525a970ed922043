"""How generations are numbered wherever a person reads them: the CLI's progress and summary, `kernelwright
trace`, `runs`, `archive show` and the HTML report all ask this module, so they agree.

A run counts from 0: `make_initial_state` starts at FIRST_GENERATION and `select` adds one as each
generation ends, so once it has run `state["generation"]` is both the number of the next generation and how
many have finished. Candidate records, their metadata, the event log and the archive's lineage keep that
number, and displays show it unchanged: the first generation is "generation 0", as in the files.
"""

from __future__ import annotations

FIRST_GENERATION = 0


def generation_label(number: int) -> str:
    """'generation 0' for the first."""
    return f"generation {number}"


def last_finished(finished: int) -> int | None:
    """The number of the last of `finished` generations (None before any has finished)."""
    return FIRST_GENERATION + finished - 1 if finished > 0 else None


def generations_label(finished: int) -> str:
    """A count with the numbers it covers: '2 generations (0 to 1)', '1 generation (0)', '0 generations'."""
    last = last_finished(finished)
    if last is None:
        return "0 generations"
    if finished == 1:
        return f"1 generation ({last})"
    return f"{finished} generations ({FIRST_GENERATION} to {last})"
