"""modelplex.sim"""
