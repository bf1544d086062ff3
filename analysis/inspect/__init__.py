"""The generation inspector of notebook 04 (widgets) and the run it opens."""
