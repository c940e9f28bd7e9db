"""File formats: readers that turn a granule file into a north-up grid, and COG writing."""
