"""The checks beside the pipeline: central differences (:mod:`.gradcheck`), brute force of the
unrolled loss (:mod:`.bruteforce`), both behind ``symlstm.verify`` (:mod:`.verification`);
derived expressions evaluated on arrays (:mod:`.numeric`); hand-written formulas judged
(:mod:`.claims`, the seed texts' in :mod:`.seed_claims`) and their mistakes named
(:mod:`.diagnose`)."""
