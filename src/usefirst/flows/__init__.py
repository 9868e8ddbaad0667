"""Use cases that span domains, in the order they happen: the only place where two domains meet."""
