"""Data layer: readers, importers, taxonomy, validation, splits and statistics."""
