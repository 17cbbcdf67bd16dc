"""Pure dispatch policy shared by the live runtime and the simulator: per-model deadline-aware
queues (BatchQueue), latency estimates, duty-cycle turns, the per-slice scheduler and the router."""
