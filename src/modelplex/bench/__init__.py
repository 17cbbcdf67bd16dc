"""Load generation shared by `modelplex bench` and the benchmarks/ scripts: cheap HTTP clients
(http), the open loop (openloop), arrival processes (arrivals), the bench config (config), its
statistics (stats) and report (report)."""
