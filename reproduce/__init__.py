"""The lecture's results, reproduced at small scale by one command: `make reproduce` (python -m reproduce).

plan.py trains and evaluates the models (through minclip's shared loop and the baselines), claims.py tests each of
the paper's claims on those evaluations, figures.py draws them, report.py writes REPORT.md and results.json.
A top-level package beside `baselines/`: it drives both, and minclip never imports it.
"""
