"""``python -m emulator serve --port PORT --data-dir DIR [--amqp-port PORT]`` (port 0 picks a free
one): HTTPS on ``--port``, Service Bus's AMQP on ``--amqp-port``."""

from __future__ import annotations

import argparse
from pathlib import Path

from emulator.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve the emulated platform over HTTPS on 127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    serve_cmd.add_argument(
        "--data-dir", type=Path, required=True, help="where ca.pem and settings.env are written"
    )
    serve_cmd.add_argument(
        "--amqp-port", type=int, default=0, help="Service Bus's AMQP port (plain TCP); 0 picks a free one"
    )
    args = parser.parse_args()
    serve(args.port, args.data_dir, args.amqp_port)


if __name__ == "__main__":
    main()
