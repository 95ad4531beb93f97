"""Tests of the template itself."""
