"""Word-embedding dimension (spec 04): Su's entropy h_n, skip-gram losses, corpora, the planted tree, knees."""
