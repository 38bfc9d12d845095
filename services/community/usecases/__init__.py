"""Community use cases: one function per use case, `(uow, command) -> result`, one module per area.

The community is cross-agency, so its units of work run with `all_agencies=True`; who may see or
change what is decided here, from the caller's Principal, the roster and the program's hub team.
"""
