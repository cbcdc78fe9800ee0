"""The benchmarks: ``python -m bench`` from the checkout (see bench/README.md).

Every figure is a ratio or a count measured in the same run as what it is compared
with; results go to bench/RESULTS.md and bench/results.png.
"""
