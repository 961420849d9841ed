"""The benchmark suite of issue 7: each scenario beside its yardstick, in the same run."""
