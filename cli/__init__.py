"""The ``ordernotify`` command and its subcommands: they use the packages, no package imports them."""
