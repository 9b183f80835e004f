"""Frame-level evaluation of any scorer (checkpoint, bundle, framediff) under both protocols."""
