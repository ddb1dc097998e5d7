"""`osqr-gpkv` / `python -m osqr_nb.gpkv`: serve the global aggregate service.

    OSQR_GPKV_TOKENS=... osqr-gpkv --db sqlite:///gpkv.db --port 8600
    osqr-gpkv --db postgresql+psycopg://USER@HOST/gpkv --token-file tokens.txt --host 0.0.0.0

It listens on 127.0.0.1 unless --host says otherwise: put TLS in front of it
(a reverse proxy) before you open it to a network, since tokens travel in headers.
"""

from __future__ import annotations

import argparse
import secrets
import sys

from .payload import MAX_BODY_BYTES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osqr-gpkv", description="Serve osqr-gpkv, the global aggregate "
                                     "service of osqr-nb (counts in, k-anonymous priors out).",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="tokens: one per line or comma-separated in --token-file, "
                                            "and/or comma-separated in OSQR_GPKV_TOKENS; write owner:token "
                                            "to give one owner several tokens (k-anonymity counts owners)")
    parser.add_argument("--db", default="sqlite:///gpkv.db", help="SQLAlchemy URL (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8600, help="port (default: %(default)s)")
    parser.add_argument("--token-file", help="file with the accepted tokens")
    parser.add_argument("--k", type=int, default=5, help="contributors a group needs to be published "
                                                          "(default: %(default)s)")
    parser.add_argument("--uploads-per-minute", type=float, default=30, help="per token (default: %(default)s)")
    parser.add_argument("--reads-per-minute", type=float, default=240, help="per token (default: %(default)s)")
    parser.add_argument("--failed-auth-per-minute", type=float, default=10,
                        help="failed authentications per client address before it is refused unheard "
                             "(default: %(default)s)")
    parser.add_argument("--max-body", type=int, default=MAX_BODY_BYTES,
                        help="largest upload in bytes (default: %(default)s)")
    parser.add_argument("--new-token", action="store_true", help="print a fresh random token and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.new_token:
        print(secrets.token_urlsafe(32))
        return 0
    try:
        import uvicorn

        from .app import Limits, create_app, load_tokens
        limits = Limits(k=args.k, max_body_bytes=args.max_body, uploads_per_minute=args.uploads_per_minute,
                        reads_per_minute=args.reads_per_minute,
                        failed_auth_per_minute=args.failed_auth_per_minute)
        app = create_app(args.db, load_tokens(args.token_file), limits)
    except ImportError as error:
        print(f"osqr-gpkv: {error}; install the server's dependencies: pip install 'sqlalchemy>=2'",
              file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"osqr-gpkv: error: {error}", file=sys.stderr)
        return 2
    print(f"osqr-gpkv on http://{args.host}:{args.port} (k={args.k})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
