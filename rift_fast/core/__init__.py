"""The ground floor: core records, what a word is, atomic writes, safe state loading, settings diffs,
digests and packaged resources. Nothing here imports the attacks, training, evaluation or the command
line."""
