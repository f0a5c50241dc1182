"""Each study's figures, one module per study; `analysis/claims/<study>.py` lists them for the report."""
