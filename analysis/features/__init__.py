"""Backbone features phi(x, y): one-pass prefix features, prompt sharing, the feature cache."""
