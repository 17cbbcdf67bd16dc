"""Composition root: builds the server from options and runs the control loops."""
