"""Tooling around the core: the command-line tools, the demo and the synthetic data generator."""
