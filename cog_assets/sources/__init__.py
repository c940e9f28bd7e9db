"""Discovery sources: where granules are found (CMR) and how their files are fetched (Earthdata)."""
