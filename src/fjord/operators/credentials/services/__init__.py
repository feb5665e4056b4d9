"""One handler per backing service behind the two-method interface of :mod:`.base`."""
