"""Runs the seed page's own Flask webhook handler (read from stdin) against
recorded hookd deliveries, through Flask's test client."""
import json
import sys


class _Task:
    """Stands in for the seed's Celery task: the handler only enqueues."""

    def __init__(self):
        self.events = []

    def delay(self, event):
        self.events.append(event)


def main():
    requests_file, secret = sys.argv[1], sys.argv[2]
    source = sys.stdin.read()
    task = _Task()
    env = {"__name__": "seed_flask", "WEBHOOK_SECRET": secret, "process_event": task}
    exec(compile(source, "seed-flask-example", "exec"), env)
    client = env["app"].test_client()
    with open(requests_file, encoding="utf-8") as f:
        deliveries = json.load(f)
    for d in deliveries:
        headers = {"X-Webhook-Signature": d["headers"]["x-webhook-signature"],
                   "Content-Type": "application/json"}
        res = client.post("/webhooks", data=d["body"].encode("utf-8"), headers=headers)
        if res.status_code != 200 or res.data != b"OK":
            print(f"flask: rejected {d['headers'].get('webhook-id')}: {res.status_code}")
            return 1
    if len(task.events) != len(deliveries):
        print("flask: the handler did not pass every event on")
        return 1
    d = deliveries[0]
    res = client.post("/webhooks", data=(d["body"] + " ").encode("utf-8"),
                      headers={"X-Webhook-Signature": d["headers"]["x-webhook-signature"],
                               "Content-Type": "application/json"})
    if res.status_code != 401:
        print(f"flask: a tampered body got {res.status_code}, want 401")
        return 1
    print(f"flask: {len(deliveries)} accepted, 1 tampered rejected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
