"""Reports: connection records in, text out. One module per format."""
