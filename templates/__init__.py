"""Pattern templates: one folder per pattern (data, not code); see templategen.registry."""
