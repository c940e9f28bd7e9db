"""NASA's Common Metadata Repository: the search client, the granule record model, incremental harvest."""
