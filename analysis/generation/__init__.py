"""The generation runner, its method registry (base, ICL, ARGS, best-of-n) and ICL prompts."""
