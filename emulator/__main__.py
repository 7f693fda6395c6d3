"""``python -m emulator serve --port PORT --data-dir DIR`` (port 0 picks a free one)."""

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
    args = parser.parse_args()
    serve(args.port, args.data_dir)


if __name__ == "__main__":
    main()
