"""Subcommands of the ``beatguard`` command, one module each."""
