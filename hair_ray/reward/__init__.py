"""Stage B: the seven shadow reward models, trained by IRL (negatives.py, train.py), checked
against human labels (evaluate.py), driven from the command line (cli.py)."""
