"""python -m tests.stripe_standin [--port N]: serve the stand-in until interrupted."""

import argparse
import threading

from .server import StripeStandin


def main() -> None:
    parser = argparse.ArgumentParser(description="A local stand-in for Stripe's Connect API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    args = parser.parse_args()
    with StripeStandin(host=args.host, port=args.port) as standin:
        print(f"Stripe stand-in at {standin.url} (any sk_test_ key); Ctrl-C stops it.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
