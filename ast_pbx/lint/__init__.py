"""`astpbx check`: schema and semantic rules over a loaded config, and reporters."""
