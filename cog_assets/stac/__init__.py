"""STAC: items and collections (pystac), the STAC API client, publishing and reconciliation."""
