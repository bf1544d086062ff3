"""Means with two-level bootstrap intervals, paired tests, Kendall tau across RMs, ROUGE."""
