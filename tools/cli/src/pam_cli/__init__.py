"""``pam``: the seed's debugging procedures as one command (see ``pam --help``)."""
