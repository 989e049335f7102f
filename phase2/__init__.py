"""Phase-2 library: the merge rule and the pseudo-label bank in one run."""
