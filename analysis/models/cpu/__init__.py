"""CPU speed paths that load_model applies; each changes no number (tested bit for bit)."""
