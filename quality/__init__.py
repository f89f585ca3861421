"""Data contracts: Great Expectations suites for the staged core tables and the marts."""
