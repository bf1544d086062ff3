"""Settings: the StudyConfig schema, the presets (YAML files), parsing and validation."""
