"""Analyses computed from the COGs: pure functions, no Dagster (AOIs, zonal statistics)."""
