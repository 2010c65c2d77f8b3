"""Studies: the comparisons our users run (losses, penalty weights, learning
rates, batch sizes, models), as one command on Optuna; see docs/studies.md.

    python -m wgan_fast.study run STUDY.yaml [--storage URL] [--workers N] [--out-dir DIR]
    python -m wgan_fast.study {report,status,dashboard} NAME_OR_DIR

    spec.py      the study YAML: checked (each error names its key), its trials and their train configs
    presets.py   named studies (loss comparison, penalty weight, learning-rate/batch search)
    storage.py   the study folder, its Optuna storage (journal file or SQL URL) and stored definition
    claims.py    atomic claims of (trial, attempt) with owners and heartbeats: nothing runs twice
    schedule.py  the next trial to run, recorded as an Optuna trial
    worker.py    `study run`'s worker threads, trial processes and heartbeat
    trial.py     one trial in its own process: train, report to Optuna, prune, tell
    results.py   trials as rows (results.csv, status) and by configuration
    report.py    report.md and its figures
    commands.py  the subcommands; cli.py their arguments
"""
