"""The phases of the end-to-end benchmark, one module each; every phase returns its figures as a dict."""

from _bench.phases.abort import abort_phase
from _bench.phases.ceiling import ceiling_phase
from _bench.phases.memory import memory_phase
from _bench.phases.operator_run import run_phase
from _bench.phases.restart import restart_phase

__all__ = ["abort_phase", "ceiling_phase", "memory_phase", "restart_phase", "run_phase"]
