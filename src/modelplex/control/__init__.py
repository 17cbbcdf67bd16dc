"""modelplex.control"""
