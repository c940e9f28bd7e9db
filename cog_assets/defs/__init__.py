"""The Dagster wiring: assets, partitions, sensors, checks and jobs built from the dataset files."""
