"""The evaluation and generation commands (see `wgan-fast --help`); each module has `main(argv)`."""
