"""modelplex.profiling"""
