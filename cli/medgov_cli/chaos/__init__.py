"""Chaos run: prove that no accepted event is lost or applied twice while services and infrastructure crash.

`run_chaos` is the entry point of `medgov chaos` (`make chaos`); `run` with a
`ChaosConfig` is the same run for tests, returning a `ChaosReport`.
"""

from medgov_cli.chaos.driver import ChaosConfig, ChaosReport, run, run_chaos

__all__ = ["ChaosConfig", "ChaosReport", "run", "run_chaos"]
