"""One module per on-disk format: ``read``, ``write``, ``sniff``, registered at the bottom."""
