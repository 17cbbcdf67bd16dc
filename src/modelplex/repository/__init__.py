"""modelplex.repository"""
