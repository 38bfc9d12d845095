"""Development tooling production never runs: the dev runner behind `make run` and the demo seed."""
