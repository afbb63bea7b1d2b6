"""All SQL lives in this package: ``tables`` (the schema), ``accounts`` (accounts and their
credentials), ``sims`` (SIM inventory). Functions take a ``Connection`` so the caller decides the
transaction; they never commit on their own.
"""
