"""The per-granule work as plain functions: stage, convert, describe; no Dagster here."""
