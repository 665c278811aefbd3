"""The receiver of EMQX's Webhook guide (a Flask app that prints each request and answers
200), with what a benchmark needs: it counts the events requests carry (each `"event":"`
in a body; a batch carries several) and answers `GET /count` with `<events> <ms from the
first to the last request>` and `GET /requests` with the number of requests, as
hookmq-bench-receiver does. Usage: flask_receiver.py PORT. Needs flask (pip).
"""

import sys
import threading
import time

from flask import Flask, json, request

api = Flask(__name__)
lock = threading.Lock()
counts = {"events": 0, "requests": 0, "first": None, "last": None}


@api.route("/", methods=["POST"])
def print_messages():
    body = request.get_data()
    reply = {"result": "ok", "message": "success"}
    print("got post request: ", body)
    now = time.monotonic()
    with lock:
        counts["events"] += max(1, body.count(b'"event":"'))
        counts["requests"] += 1
        counts["first"] = counts["first"] or now
        counts["last"] = now
    return json.dumps(reply), 200


@api.route("/count")
def count():
    with lock:
        span = 0 if counts["first"] is None else counts["last"] - counts["first"]
        return f"{counts['events']} {round(span * 1000)}\n"


@api.route("/requests")
def requests():
    with lock:
        return f"{counts['requests']}\n"


if __name__ == "__main__":
    api.run(host="127.0.0.1", port=int(sys.argv[1]))
