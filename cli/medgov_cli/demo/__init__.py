"""The regional scenario behind `make run` and `make demo`."""
