"""modelplex.planning"""
