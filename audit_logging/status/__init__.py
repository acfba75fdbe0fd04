"""``python -m audit_logging status``: one screen for an operator.

What the pipeline holds and how far each part has got: the stream(s) and their newest record,
each consumer name's stored offset, lag and oldest waiting record, what each consumer's
``/readyz`` says, the newest archive object and digest, dead letters of the last day, index
document counts per month, and the local spool's depth. It sits beside the consumer and the
API (it reads what they write, imports neither) and it never writes anything.
"""
