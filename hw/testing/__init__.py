"""hw.testing"""
