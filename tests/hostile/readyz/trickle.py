"""A valid answer trickled a byte every half second: each read succeeds, the whole never
ends in time (a per-read timeout alone would wait minutes)."""
import json

from tests.status._readyz_server import Answer

ANSWER = Answer(200, json.dumps({"status": "ready", "problems": []}).encode() + b" " * 400,
                chunk=1, pause=0.5)
EXPECT = "no complete answer within"
