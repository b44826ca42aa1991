"""intake's benchmarks: `python -m bench` runs them all (bench/run_all.py); each script also runs alone."""
