"""`vault witness …`: run an independent witness. It reads no VAULT_* setting and opens nothing of the vault's."""

from __future__ import annotations

import argparse
from pathlib import Path

from vault.witness.store import WitnessStore, init_key, load_key


def cmd_init(args: argparse.Namespace) -> int:
    verifier = init_key(Path(args.dir), args.name)
    WitnessStore(Path(args.dir))
    print(verifier.vkey)
    return 0


def cmd_add_log(args: argparse.Namespace) -> int:
    verifier = WitnessStore(Path(args.dir)).add_log(args.key)
    print(f"following {verifier.name}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from vault.witness.app import create_witness_app
    from vault.witness.service import Witness

    directory = Path(args.dir)
    name, key = load_key(directory)
    witness = Witness(WitnessStore(directory), name, key)
    print(f"witness {witness.verifier.vkey} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_witness_app(witness), host=args.host, port=args.port, log_level="warning")
    return 0


def register(witness: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def with_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--dir", required=True, help="the witness's own directory (key file and database)")
        return p

    init = with_dir(witness.add_parser("init", help="create the witness key; prints its verifier key"))
    init.add_argument("--name", required=True, help="the witness's name, a schema-less URL such as witness.example/w1")
    init.set_defaults(run=cmd_init)
    add = with_dir(witness.add_parser("add-log", help="follow a log, named by its verifier key (`vault audit key`)"))
    add.add_argument("key", help="the log's verifier key")
    add.set_defaults(run=cmd_add_log)
    serve = with_dir(witness.add_parser("serve", help="serve the tlog-witness protocol"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.set_defaults(run=cmd_serve)
