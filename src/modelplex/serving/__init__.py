"""modelplex.serving"""
