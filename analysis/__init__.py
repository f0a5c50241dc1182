"""Turn a study's Parquet results into verdicts, figures and a Markdown report, with no Ray cluster."""
