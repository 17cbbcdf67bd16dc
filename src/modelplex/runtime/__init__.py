"""Devices, slices, worker processes and the executors that run batches on them."""
