"""Presentation: the papermill runner, index.html, timings, the CPU schedule, warm-up, plots."""
