"""Private I/O layer shared by the formats: atomic output, isolated reads, HDF5 and zip safety checks.

Formats import from here, never from each other.
"""
