"""The parts of benchmarks/throughput.py, each readable on its own."""
