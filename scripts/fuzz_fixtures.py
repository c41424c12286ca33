#!/usr/bin/env python3
"""Real ids for the API fuzzer (scripts/fuzz-api.sh), made through the gateway.

Signs in a demo buyer and a demo organizer (the README's accounts), finds an event on sale,
one in on-sale mode and one of the organizer's, holds tickets, books one hold and joins a
waiting room, then prints `NAME=value` lines for scripts/schemathesis.toml's placeholders,
so that the fuzzer's requests reach past the 404s. Standard library only.

Usage: fuzz_fixtures.py GATEWAY_URL
"""

import json
import sys
import urllib.error
import urllib.request
import uuid

BUYERS = [f"user{n:02d}@demo.ticketing.local" for n in range(1, 26)]
BUYER_PASSWORD = "User-Demo-2026!"
ORGANIZER = "organizer1@demo.ticketing.local"
ORGANIZER_PASSWORD = "Organizer-Demo-2026!"


def call(base, method, path, token=None, body=None, key=None):
    """(status, JSON answer) of one request."""
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if key:
        headers["idempotency-key"] = key
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def ok(base, method, path, token=None, body=None, key=None):
    status, answer = call(base, method, path, token, body, key)
    if not 200 <= status < 300:
        sys.exit(f"fuzz_fixtures: {method} {path}: {status} {answer}")
    return answer


def login(base, email, password):
    return ok(base, "POST", "/v1/auth/login", body={"email": email, "password": password})["access_token"]


def hold_somewhere(base, token, events):
    """A one-ticket hold of a general-admission category on sale, or None."""
    for event in events:
        for category in ok(base, "GET", f"/v1/events/{event['id']}")["categories"]:
            if category["kind"] != "general_admission":
                continue
            body = {"category_id": category["id"], "quantity": 1}
            status, hold = call(base, "POST", f"/v1/events/{event['id']}/holds", token, body, str(uuid.uuid4()))
            if status == 201:
                return event, hold
    return None, None


def main():
    base = sys.argv[1].rstrip("/")
    events = ok(base, "GET", "/v1/events?limit=100")["items"]
    on_sale = [e for e in events if e["status"] == "on_sale" and not e["waiting_room"]["enabled"]]
    queued = [e for e in events if e["waiting_room"]["enabled"]]

    # A buyer with room under the per-user limit: a hold to keep, a hold to book.
    for email in BUYERS:
        buyer = login(base, email, BUYER_PASSWORD)
        event, hold = hold_somewhere(base, buyer, on_sale)
        if hold is None:
            continue
        _, booked = hold_somewhere(base, buyer, [event])
        if booked is not None:
            break
    else:
        sys.exit("fuzz_fixtures: no demo buyer could hold two tickets of an event on sale")
    booking = ok(base, "POST", "/v1/bookings", buyer, {"hold_id": booked["id"]}, str(uuid.uuid4()))
    me = ok(base, "GET", "/v1/me", buyer)

    organizer = login(base, ORGANIZER, ORGANIZER_PASSWORD)
    organizer_id = ok(base, "GET", "/v1/me", organizer)["id"]
    own = [e for e in events if e["organizer_id"] == organizer_id]
    if not own:
        sys.exit(f"fuzz_fixtures: {ORGANIZER} has no event")

    queued_event, ticket = event["id"], str(uuid.uuid4())
    if queued:
        queued_event = queued[0]["id"]
        ticket = ok(base, "POST", f"/v1/events/{queued_event}/queue", buyer)["ticket"]

    fixtures = {
        "FUZZ_BUYER_TOKEN": buyer,
        "FUZZ_ORGANIZER_TOKEN": organizer,
        "FUZZ_EVENT": event["id"],
        "FUZZ_ORGANIZER_EVENT": own[0]["id"],
        "FUZZ_VENUE": own[0]["venue_id"],
        "FUZZ_HOLD": hold["id"],
        "FUZZ_BOOKING": booking["id"],
        "FUZZ_QUEUED_EVENT": queued_event,
        "FUZZ_TICKET": ticket,
        "FUZZ_USER": me["id"],
    }
    for name, value in fixtures.items():
        print(f"{name}={value}")


if __name__ == "__main__":
    main()
