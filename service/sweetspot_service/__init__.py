"""Sweetspot service: hosts the value model behind /v1/score, /v1/select, /v1/update."""
