"""The clip pipeline: stage machine, runner and the executors that run stage jobs."""
