"""modelplex.runtime"""
