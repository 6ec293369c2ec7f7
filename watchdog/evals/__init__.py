"""The offline eval harness: replay labeled datasets and recorded Claude Code sessions through
the hook's own pipeline (engine, escalation, judge, cache, budget) and measure the result.

    inputs.load -> [Stream of Case] -> runner.replay -> [Outcome] -> metrics.summarize
                -> report (terminal table, --json) and html (--html)

`watchdog evals run` and `watchdog evals diff` are in cli.py. Nothing here is imported on the
hook's path.
"""
