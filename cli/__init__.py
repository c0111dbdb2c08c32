"""`inferq`: the operator's command line, talking to the API over HTTP."""
